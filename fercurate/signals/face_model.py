"""MediaPipe on 48-px faces: what it finds on one image, and the eye-aligned crop.

Pure image work, no database and no files: :class:`FaceAnalyzer` runs FaceDetection and
FaceMesh on the image put on a black, enlarged canvas (what makes them work on tight FER
crops) and maps every coordinate back; :func:`alignment_matrix` and :func:`aligned_crop`
level the eyes. The ``faces`` signal (:mod:`fercurate.signals.faces`) runs it over a
dataset and writes the fields and crops.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

N_LANDMARKS = 468
UPPER_LIP = 13  # FaceMesh index of the upper lip's centre


@lru_cache(maxsize=1)
def eye_indices() -> tuple[np.ndarray, np.ndarray]:
    """FaceMesh indices of the image-left eye's and the image-right eye's contours."""
    from mediapipe.python.solutions import face_mesh_connections as fmc

    def idx(edges):
        return np.array(sorted({i for e in edges for i in e}))
    # FaceMesh's "RIGHT_EYE" is the subject's right eye, on the image's left.
    return idx(fmc.FACEMESH_RIGHT_EYE), idx(fmc.FACEMESH_LEFT_EYE)


@dataclass
class FacesParams:
    #: black border on each side, as a fraction of the image's longer side
    border_frac: float = 0.5
    #: the bordered canvas is enlarged to at least this many pixels
    canvas_px: int = 96
    min_detection_confidence: float = 0.3
    #: a second, permissive FaceMesh pass, only where nothing was found: on FER2013 it finds
    #: 53 of 308 such images, all real faces (profiles, hands over faces, drawings); its
    #: landmarks there are not trusted for a crop, so it only clears is_non_face
    retry_mesh_confidence: float = 0.1
    #: aligned crop: side in pixels, inter-ocular distance and eye height (fractions of the side)
    crop_px: int = 64
    crop_eye_distance: float = 0.36
    crop_eye_y: float = 0.40
    #: eye line to upper lip, in inter-ocular distances, beyond which a face is turned
    #: and the scale comes from that drop (0.8-1.2 on frontal FER2013 faces)
    max_lip_drop: float = 1.2
    #: images per saved chunk
    chunk_size: int = 1024


@dataclass
class FaceResult:
    """What MediaPipe found on one image, in pixels of the original image."""

    face_score: float                  # 0 when the detector finds nothing
    box: np.ndarray | None             # (x, y, w, h) of the detection
    landmarks: np.ndarray | None       # (468, 2) FaceMesh points
    seen_on_retry: bool = False        # only the permissive FaceMesh pass found a face


@contextmanager
def quiet_native_stderr():
    """Silence what MediaPipe's C++ side (absl, TFLite) writes straight to file descriptor 2
    while its graphs start ("All log messages before absl::InitializeLog()", "Created
    TensorFlow Lite XNNPACK delegate", feedback-manager warnings): no Python setting or
    environment variable reaches those writes. Python errors still raise as usual."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


class FaceAnalyzer:
    """One process's MediaPipe graphs plus the canvas mapping around them."""

    def __init__(self, params: FacesParams):
        with quiet_native_stderr():
            self._start(params)
            self.analyse(np.zeros((48, 48), np.uint8))  # the graphs log once, on their first image

    def _start(self, params: FacesParams) -> None:
        import mediapipe as mp

        self.params = params
        self.detector = mp.solutions.face_detection.FaceDetection(
            model_selection=0, min_detection_confidence=params.min_detection_confidence)
        self.mesh = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=True, max_num_faces=1, refine_landmarks=False,
            min_detection_confidence=params.min_detection_confidence)
        self.retry_mesh = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=True, max_num_faces=1, refine_landmarks=False,
            min_detection_confidence=params.retry_mesh_confidence)

    def canvas(self, gray: np.ndarray) -> tuple[np.ndarray, int]:
        """The RGB canvas MediaPipe sees and the border width (in original pixels)."""
        h, w = gray.shape
        border = int(round(self.params.border_frac * max(h, w)))
        padded = cv2.copyMakeBorder(gray, border, border, border, border, cv2.BORDER_CONSTANT, value=0)
        scale = self.params.canvas_px / max(padded.shape)
        if scale > 1:
            padded = cv2.resize(padded, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
        return cv2.cvtColor(padded, cv2.COLOR_GRAY2RGB), border

    def analyse(self, gray: np.ndarray) -> FaceResult:
        rgb, border = self.canvas(gray)
        # canvas-relative -> original pixels; the enlargement cancels out
        ch, cw = gray.shape[0] + 2 * border, gray.shape[1] + 2 * border
        score, box, landmarks = 0.0, None, None
        found = self.detector.process(rgb).detections
        if found:
            best = max(found, key=lambda d: d.score[0])
            score = float(best.score[0])
            rb = best.location_data.relative_bounding_box
            box = np.array([rb.xmin * cw - border, rb.ymin * ch - border, rb.width * cw, rb.height * ch])
        meshes = self.mesh.process(rgb).multi_face_landmarks
        if meshes:
            pts = np.array([(p.x, p.y) for p in meshes[0].landmark], dtype=np.float64)
            landmarks = pts * [cw, ch] - border
        elif not found:
            return FaceResult(score, box, None, self.retry_mesh.process(rgb).multi_face_landmarks is not None)
        return FaceResult(score, box, landmarks)

    def close(self) -> None:
        self.detector.close()
        self.mesh.close()
        self.retry_mesh.close()


def eye_centres(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(image-left eye, image-right eye) centres: the means of the eye contours."""
    left, right = eye_indices()
    return landmarks[left].mean(axis=0), landmarks[right].mean(axis=0)


def alignment_matrix(landmarks: np.ndarray, params: FacesParams) -> np.ndarray:
    """The 2x3 similarity transform that levels the eyes and fixes their distance.

    A turned head shortens the eyes' distance on the image but not the drop from the
    eye line to the upper lip, so when that drop exceeds ``max_lip_drop`` inter-ocular
    distances (a profile), it sets the scale instead: otherwise a profile's crop is a
    close-up of one eye.
    """
    left, right = eye_centres(landmarks)
    dx, dy = right - left
    eye_distance = max(float(np.hypot(dx, dy)), 1e-6)
    mid = (left + right) / 2
    across = np.array([-dy, dx]) / eye_distance  # unit normal to the eye line
    lip_drop = abs(float((landmarks[UPPER_LIP] - mid) @ across))
    size = params.crop_px
    scale = params.crop_eye_distance * size / max(eye_distance, lip_drop / params.max_lip_drop)
    # rotating by the eyes' angle (OpenCV: positive = counter-clockwise on screen) levels them
    m = cv2.getRotationMatrix2D((float(mid[0]), float(mid[1])), float(np.degrees(np.arctan2(dy, dx))), scale)
    m[:, 2] += (size / 2 - mid[0], params.crop_eye_y * size - mid[1])
    return m


def aligned_crop(gray: np.ndarray, landmarks: np.ndarray, params: FacesParams) -> np.ndarray:
    m = alignment_matrix(landmarks, params)
    return cv2.warpAffine(gray, m, (params.crop_px, params.crop_px), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)
