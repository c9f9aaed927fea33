"""The benchmark protocol: SOD metrics over a dataset, through pysodmetrics (``py_sod_metrics``).

Protocol (one for every training and benchmark):

* Inputs are 8-bit grey images: the prediction resized back to the ground truth's size, the ground
  truth as stored. pysodmetrics normalises them: the prediction is divided by 255 and min-max
  stretched to [0, 1] per image (a constant prediction is left as it is); the ground truth is
  binarised at > 128 (so soft ground truth counts as foreground above half grey).
* Thresholds: 256 (0..255), as pysodmetrics' dynamic curves. "max" and "mean" F / E are the maximum
  and mean of the dataset-mean curve; "adaptive" thresholds each prediction at twice its mean.
* F-measure: beta^2 = 0.3. S-measure (alpha 0.5), E-measure, weighted F-measure and MAE are
  pysodmetrics' definitions, including their handling of empty and full ground truth.
* IoU and accuracy at 0.5: the normalised prediction > 0.5, per image, then averaged. IoU is
  pysodmetrics' tp / (tp + fp + fn) with a tiny epsilon, so an image with empty ground truth scores
  IoU 0 even when its prediction is empty too (its accuracy is then 1).
* AUC: the area under the dataset-mean ROC curve (mean TPR against mean FPR over the 256
  thresholds, closed with the points (0, 0) and (1, 1)), by the trapezoid rule.
* Every metric is a mean over images (sample-based), never over the pooled pixels.
"""

from __future__ import annotations

import warnings

import numpy as np
import py_sod_metrics as psm

from synthsod.errors import SynthsodError

BETA = 0.3
SCALARS = (
    "mae",
    "max_f",
    "mean_f",
    "adp_f",
    "s_measure",
    "max_e",
    "mean_e",
    "adp_e",
    "weighted_f",
    "iou",
    "accuracy",
    "auc",
)


class SODMetrics:
    """Accumulate one benchmark's metrics image by image; :meth:`results` gives the scalars."""

    def __init__(self):
        with warnings.catch_warnings():  # Emeasure/Smeasure/MAE are current; only Fmeasure moved to V2
            warnings.simplefilter("ignore", UserWarning)
            self._mae, self._sm, self._em, self._wfm = psm.MAE(), psm.Smeasure(), psm.Emeasure(), psm.WeightedFmeasure()
        self._v2 = psm.FmeasureV2(
            metric_handlers={
                "fm": psm.FmeasureHandler(with_dynamic=True, with_adaptive=True, beta=BETA),
                "precision": psm.PrecisionHandler(with_dynamic=True, with_adaptive=False),
                "recall": psm.RecallHandler(with_dynamic=True, with_adaptive=False),
                "tpr": psm.TPRHandler(with_dynamic=True, with_adaptive=False),
                "fpr": psm.FPRHandler(with_dynamic=True, with_adaptive=False),
                "iou": psm.IOUHandler(with_dynamic=False, with_adaptive=False, with_binary=True),
                "accuracy": psm.OverallAccuracyHandler(with_dynamic=False, with_adaptive=False, with_binary=True),
            }
        )
        self.count = 0

    def step(self, pred: np.ndarray, gt: np.ndarray, name: str = "image") -> None:
        """Add one uint8 H x W prediction and its uint8 H x W ground truth."""
        for what, array in (("prediction", pred), ("ground truth", gt)):
            if array.dtype != np.uint8 or array.ndim != 2:
                raise SynthsodError(f"{name}: {what} must be a uint8 grey image, got {array.dtype} {array.shape}")
        if pred.shape != gt.shape:
            raise SynthsodError(f"{name}: prediction {pred.shape} and ground truth {gt.shape} differ in size")
        for metric in (self._mae, self._sm, self._em, self._wfm, self._v2):
            metric.step(pred, gt)
        self.count += 1

    def curves(self) -> dict[str, np.ndarray]:
        """Dataset-mean curves over the 256 thresholds: precision, recall, F, E, TPR, FPR."""
        self._require()
        return self._curves(self._v2.get_results(), self._em.get_results()["em"])

    @staticmethod
    def _curves(v2: dict, em: dict) -> dict[str, np.ndarray]:
        return {
            "precision": v2["precision"]["dynamic"],
            "recall": v2["recall"]["dynamic"],
            "f": v2["fm"]["dynamic"],
            "e": em["curve"],
            "tpr": v2["tpr"]["dynamic"],
            "fpr": v2["fpr"]["dynamic"],
        }

    def results(self) -> dict[str, float]:
        self._require()
        v2, em = self._v2.get_results(), self._em.get_results()["em"]
        curves = self._curves(v2, em)
        fpr = np.concatenate([[0.0], curves["fpr"], [1.0]])  # curves run from the highest threshold down
        tpr = np.concatenate([[0.0], curves["tpr"], [1.0]])
        return {
            "mae": float(self._mae.get_results()["mae"]),
            "max_f": float(curves["f"].max()),
            "mean_f": float(curves["f"].mean()),
            "adp_f": float(v2["fm"]["adaptive"]),
            "s_measure": float(self._sm.get_results()["sm"]),
            "max_e": float(em["curve"].max()),
            "mean_e": float(em["curve"].mean()),
            "adp_e": float(em["adp"]),
            "weighted_f": float(self._wfm.get_results()["wfm"]),
            "iou": float(v2["iou"]["binary"]),
            "accuracy": float(v2["accuracy"]["binary"]),
            "auc": float(np.trapezoid(tpr, fpr)),
        }

    def _require(self) -> None:
        if self.count == 0:
            raise SynthsodError("no image was evaluated")


__all__ = ["BETA", "SCALARS", "SODMetrics"]
