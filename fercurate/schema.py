"""The one place that names every dataset field, class list, split and tag.

Nothing else in fercurate spells a field name as a string: the signals, the fixes, the
plugin and the manifest all read these constants, so a rename happens here only.
"""

from __future__ import annotations

# --- classes -------------------------------------------------------------------------
#: FER2013's seven emotions in the order of ``fer2013.csv``'s ``emotion`` column (0-6).
FER2013_CSV_CLASSES: tuple[str, ...] = (
    "angry", "disgust", "fear", "happy", "sad", "surprise", "neutral",
)
#: Canonical (alphabetical) class order used by fercurate datasets of the 7 basic
#: emotions; it is the folder order of the Kaggle release, so class indices agree with
#: torchvision's ImageFolder on the same data.
EMOTIONS: tuple[str, ...] = tuple(sorted(FER2013_CSV_CLASSES))

# --- splits --------------------------------------------------------------------------
TRAIN, VAL, TEST = "train", "val", "test"
SPLITS: tuple[str, ...] = (TRAIN, VAL, TEST)
#: FER2013's ``Usage`` values and the split each one is.
FER2013_USAGE_TO_SPLIT = {"Training": TRAIN, "PublicTest": VAL, "PrivateTest": TEST}

# --- sample fields -------------------------------------------------------------------
GROUND_TRUTH = "ground_truth"      # fo.Classification: the label as the source gave it
INGESTED_LABEL = "ingested_label"   # read-only copy of the given label as ingest wrote it (fercurate.given_labels)
SPLIT = "split"                    # one of SPLITS (also set as a sample tag)
SOURCE = "source"                  # source layout name, e.g. "fer2013_folder"
SOURCE_KEY = "source_key"          # stable id inside the source (relative path, csv row)
FILE_HASH = "file_hash"            # sha1 of the image file's bytes
USAGE = "usage"                    # FER2013 Usage: Training / PublicTest / PrivateTest
CSV_ROW = "csv_row"                # 0-based data row of fer2013.csv
KDEF_SESSION = "kdef_session"      # A / B
KDEF_SEX = "kdef_sex"              # F / M
KDEF_ACTOR = "kdef_actor"          # e.g. "F01"
KDEF_ANGLE = "kdef_angle"          # FL, HL, S, HR, FR

#: Source metadata fields a reader may fill, with their FiftyOne field types.
SOURCE_FIELDS: dict[str, type] = {
    USAGE: str,
    CSV_ROW: int,
    KDEF_SESSION: str,
    KDEF_SEX: str,
    KDEF_ACTOR: str,
    KDEF_ANGLE: str,
}

# --- dataset-level info keys ---------------------------------------------------------
INFO_CLASSES = "classes"
INFO_SOURCE = "source"            # {"layout":..., "path":..., "ingested_at":...}
INFO_SIGNALS = "signals"          # {signal name: {"computed_at", "params", "summary"}}
INFO_INGEST_REPORT = "last_ingest"

#: Datasets fercurate creates are tagged so ``fercurate status`` lists only its own.
DATASET_TAG = "fercurate"

# --- curation signals ----------------------------------------------------------------
# Contract (after cleanlab's issue managers): each signal writes a per-sample score in
# [0, 1] where LOWER means MORE LIKELY a problem, a boolean flag, and a dataset-level
# summary (in dataset.info[INFO_SIGNALS][name]) with the parameters it ran with.

# quality: blank / dark / bright / blurry / low contrast
QUALITY_SCORE = "quality_score"            # min of the sub-scores below
IS_LOW_QUALITY = "is_low_quality"
QUALITY_ISSUES = "quality_issues"          # list of the names below that are flagged
QUALITY_SUBSCORES = {                      # issue name -> score field
    "blank": "blank_score",
    "dark": "dark_score",
    "bright": "bright_score",
    "blurry": "blurry_score",
    "low_contrast": "low_contrast_score",
}

# faces: MediaPipe face detection + FaceMesh landmarks + eye-aligned crop
FACE_SCORE = "face_score"                  # detector confidence (0 = no face found)
IS_NON_FACE = "is_non_face"
FACE_DETECTION = "face_detection"          # fo.Detection (relative box) or None
FACE_LANDMARKS = "face_landmarks"          # fo.Keypoints (468 FaceMesh points, relative)
ALIGNMENT = "alignment"                    # "aligned" | "no_face" | "no_landmarks"
ALIGNED_FILEPATH = "aligned_filepath"      # media field: the aligned crop (None if not aligned)

# usability: is this a face one can read an emotion from (no face, graphic, tiny face)
USABILITY = "usability"                    # [0, 1], below 0.5 = flagged
IS_UNUSABLE = "is_unusable"
USABILITY_REASONS = "usability_reasons"    # list of USABILITY_REASON_NAMES that apply
FLAT_SHARE = "flat_share"                  # share of pixels in flat (gradient-free) areas
USABILITY_REASON_NAMES: tuple[str, ...] = ("no_face", "graphic", "tiny_face")

# duplicates: exact (pixel-identical) and near (re-encoded, re-cropped, shifted)
DUP_GROUP = "dup_group"                    # group id shared by all members, None if unique
DUP_KIND = "dup_kind"                      # "exact" | "near" | None
DUP_KEEPER = "dup_keeper"                  # True for the one member proposed to keep
IS_DUPLICATE = "is_duplicate"              # member proposed for removal (not the keeper)
DUP_SCORE = "dup_score"                    # 1 - similarity to the closest other image
DUP_LABEL_CONFLICT = "dup_label_conflict"  # the group's members carry different labels
DUP_CROSS_SPLIT = "dup_cross_split"        # the group spans splits (train/test leakage)

# label issues: cleanlab on out-of-fold predicted probabilities
LABEL_QUALITY = "label_quality"
IS_LABEL_ISSUE = "is_label_issue"
SUGGESTED_LABEL = "suggested_label"        # fo.Classification(label, confidence)
OOF_PROBS = "oof_probs"                    # list[float] in dataset.info[INFO_CLASSES] order; a version's soft_label

# embeddings + map
EMBEDDING = "embedding"                    # list[float] / vector
UMAP_BRAIN_KEY = "fercurate_umap"          # fiftyone.brain visualization key

# class balance: dataset-level only
INFO_BALANCE = "balance"
FACE_ROLL = "face_roll"                    # eye-line angle in degrees (None without landmarks)

# --- review: proposed fixes and the curator's decisions ------------------------------
# Each signal's finding becomes a proposed fix, one embedded document per kind on the
# sample (None when that kind is not proposed), so the App's sidebar can filter e.g.
# ``fix_relabel.status``. The original label is never overwritten: CURATED_LABEL and
# CURATED_DROP are derived from the accepted fixes and rewritten with every decision.
# A label issue becomes a relabel only where the suggested label is likely right; where
# the model is sure only that the given label is wrong (or the face sits between two
# emotions) it becomes drop_ambiguous: a wrong relabel is worse than a drop.
RELABEL, DROP_AMBIGUOUS, DROP_DUPLICATE, DROP_NONFACE, DROP_QUALITY, USE_CROP = (
    "relabel", "drop_ambiguous", "drop_duplicate", "drop_nonface", "drop_quality", "use_crop")
FIX_KINDS: tuple[str, ...] = (RELABEL, DROP_AMBIGUOUS, DROP_DUPLICATE, DROP_NONFACE, DROP_QUALITY, USE_CROP)
DROP_KINDS: tuple[str, ...] = (DROP_AMBIGUOUS, DROP_DUPLICATE, DROP_NONFACE, DROP_QUALITY)
PENDING, ACCEPTED, REJECTED = "pending", "accepted", "rejected"
FIX_STATUSES: tuple[str, ...] = (PENDING, ACCEPTED, REJECTED)
ACCEPT, REJECT, UNDO, SET_LABEL = "accept", "reject", "undo", "set_label"   # decision actions


def fix_field(kind: str) -> str:
    """The sample field holding the proposed fix of ``kind``, e.g. ``fix_relabel``."""
    return f"fix_{kind}"


# keys of a fix document
FIX_STATUS = "status"          # one of FIX_STATUSES
FIX_SCORE = "score"            # the evidence score (lower = stronger case for the fix)
FIX_TARGET = "target"          # relabel: the label it would set
FIX_CONFIDENCE = "confidence"  # label fixes: out-of-fold probability of the suggested label
FIX_MARGIN = "margin"          # label fixes: that probability less the runner-up's
FIX_GIVEN_PROB = "given_prob"  # label fixes: out-of-fold probability of the given label
FIX_RUNNER_UP = "runner_up"    # drop_ambiguous: the second most likely label
FIX_PROPOSED_BY = "proposed_by"  # signal name, or "manual" for a label set by hand
FIX_CURATOR = "curator"        # who decided last (None while pending)
FIX_DECIDED_AT = "decided_at"  # when (UTC ISO string, None while pending)

CURATED_LABEL = "curated_label"    # fo.Classification: the label after accepted fixes
CURATED_DROP = "curated_drop"      # True when an accepted fix drops the sample

#: Saved views, one review queue per fix kind, pending first, strongest evidence first.
QUEUE_VIEWS: dict[str, str] = {
    RELABEL: "review-label-issues",
    DROP_AMBIGUOUS: "review-ambiguous",
    DROP_DUPLICATE: "review-duplicates",
    DROP_NONFACE: "review-nonface",
    DROP_QUALITY: "review-quality",
    USE_CROP: "review-crops",
}

#: The fix kind each review queue holds (the panel decides only that kind of a queue's samples).
QUEUE_KINDS: dict[str, str] = {view: kind for kind, view in QUEUE_VIEWS.items()}

#: How the review panel and the operators name each queue.
QUEUE_LABELS: dict[str, str] = {
    RELABEL: "label issues",
    DROP_AMBIGUOUS: "label disputed, no clear answer",
    DROP_DUPLICATE: "duplicates",
    DROP_NONFACE: "unusable image (no face, graphic, tiny face)",
    DROP_QUALITY: "low quality",
    USE_CROP: "aligned crops",
}

# --- MongoDB collections fercurate owns (beside FiftyOne's) --------------------------
#: curator name of decisions made by an auto-accept policy: ``auto:<policy name>``
AUTO_CURATOR_PREFIX = "auto:"
DECISIONS_COLLECTION = "fercurate_decisions"   # append-only audit log of every decision
VERSIONS_COLLECTION = "fercurate_versions"     # frozen versions (immutable once written)
RAW_VERSION = "raw"                            # always available: every sample, original labels
