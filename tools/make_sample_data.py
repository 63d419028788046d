"""Rebuild fercurate/sample_data/fer2013: a stratified, seeded sample of real FER2013.

The bundled sample lets ``fercurate launch fer2013`` run on a machine without the data:
per class 40 Training, 10 PublicTest and 10 PrivateTest images (original JPEG bytes,
Kaggle layout). Usage: python tools/make_sample_data.py /path/to/fer2013
"""

import random
import shutil
import sys
from pathlib import Path

PER_USAGE = {"Training": 40, "PublicTest": 10, "PrivateTest": 10}


def main(src: Path, dst: Path) -> None:
    rng = random.Random(2013)
    if dst.exists():
        shutil.rmtree(dst)
    for top in ("train", "test"):
        for class_dir in sorted((src / top).iterdir()):
            files = sorted(class_dir.iterdir())
            for usage, n in PER_USAGE.items():
                pool = [f for f in files if f.name.startswith(usage + "_")]
                for f in rng.sample(pool, min(n, len(pool))) if pool else []:
                    out = dst / top / class_dir.name / f.name
                    out.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(f, out)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(__file__).resolve().parent.parent / "fercurate" / "sample_data" / "fer2013")
