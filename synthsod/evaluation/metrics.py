"""The benchmark protocols: SOD metrics over a dataset, through pysodmetrics (``py_sod_metrics``).

``evaluation.protocol`` in the config picks one for every training and benchmark (:data:`PROTOCOLS`):
``pysodmetrics`` (the default, described first) or ``ebigbigan`` (E-BigBiGAN's paper, after it). Both
report the same keys (:data:`SCALARS`) and curves, so the summary and the scorecard read either.

``pysodmetrics`` protocol:

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

``ebigbigan`` protocol (E-BigBiGAN, Voynov et al.: its Table 2 reports max F, IoU and accuracy; the
public code's ``metrics.py`` and ``postprocessing.py`` fix the details). Where it differs:

* Prediction: each image is resized so its *shorter* side is the training's ``eval_size`` (128 in the
  paper) keeping the aspect ratio, the longer side ``eval_size * long // short``, instead of squashed to
  ``eval_size`` x ``eval_size`` (:func:`synthsod.sod.predict.resized_shape`); the map is resized back to
  the image's size as under pysodmetrics.
* The prediction is the raw probability map, never min-max stretched: a map whose maximum is 0.4 has
  no foreground at 0.5 (under pysodmetrics it is stretched to reach 1 first). On the stored 8-bit map
  ``v = rint(255 p)``, ``p >= 0.5`` is exactly ``v >= 128``.
* Ground truth: foreground is ``gt / 255 >= 0.5``, i.e. ``gt >= 128`` (pysodmetrics: ``> 128``); only a
  soft mask's value 128 differs.
* ``iou`` and ``accuracy``: the raw map ``>= 0.5`` per image, then averaged; IoU is
  ``|P & G| / |P | G|`` (1 when both are empty; the benchmarks' masks never are).
* ``max_f``: per image, precision and recall of ``v > k`` for the paper's 255 thresholds
  ``k / 255, k = 0..254`` (``v >= t, t = 1..255``); precision is 1 on an empty prediction, recall 1 on an
  empty ground truth, F (beta^2 = 0.3) 0 where both are 0. F is averaged over images per threshold and
  ``max_f`` is the maximum over those 255 thresholds. (pysodmetrics also averages per-image F, but on
  stretched maps, over 256 thresholds including 0, with precision 0 on an empty prediction and
  recall 0 on an empty ground truth.)
* ``mean_f`` is the mean of that F curve over the same 255 thresholds; the ``precision``, ``recall``
  and ``f`` curves are the per-image means at each of the 256 thresholds ``v >= t`` (row 0 = all
  foreground, outside the paper's range).
* Not in the paper, and left as pysodmetrics computes them (stretched maps, ``gt > 128``), for
  reference only: ``mae``, ``adp_f``, ``s_measure``, ``max_e``, ``mean_e``, ``adp_e``, ``weighted_f``,
  ``auc`` and the ``e``, ``tpr`` and ``fpr`` curves.
"""

from __future__ import annotations

import warnings

import numpy as np
import py_sod_metrics as psm

from synthsod.errors import SynthsodError

BETA = 0.3
PYSODMETRICS, EBIGBIGAN = "pysodmetrics", "ebigbigan"
PROTOCOLS = (PYSODMETRICS, EBIGBIGAN)
LEVELS = 256  # thresholds of the curves: v >= t for the 8-bit values t = 0..255
HALF = 128  # v >= 128 <=> p >= 0.5 for v = rint(255 p); also E-BigBiGAN's ground-truth threshold (gt / 255 >= 0.5)
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
EBIGBIGAN_SCALARS = ("max_f", "mean_f", "iou", "accuracy")  # what the ebigbigan protocol computes its own way
EBIGBIGAN_CURVES = ("precision", "recall", "f")


class PaperMetrics:
    """E-BigBiGAN's figures on raw 8-bit maps (the module docstring's ``ebigbigan`` protocol), image by image."""

    def __init__(self):
        self._sums = {name: np.zeros(LEVELS) for name in EBIGBIGAN_CURVES}
        self._iou = self._accuracy = 0.0
        self.count = 0

    def step(self, pred: np.ndarray, gt: np.ndarray) -> None:
        """Add one uint8 H x W map (no stretching) and its uint8 H x W ground truth (foreground >= 128)."""
        fg = gt >= HALF
        gt_area = int(fg.sum())
        # [t] = pixels with v >= t: reversed cumulative histograms
        predicted = np.cumsum(np.bincount(pred.ravel(), minlength=LEVELS)[::-1])[::-1].astype(np.float64)
        tp = np.cumsum(np.bincount(pred[fg], minlength=LEVELS)[::-1])[::-1].astype(np.float64)
        precision = np.divide(tp, predicted, out=np.ones(LEVELS), where=predicted > 0)
        recall = np.divide(tp, gt_area, out=np.ones(LEVELS), where=np.full(LEVELS, gt_area > 0))
        denominator = BETA * precision + recall
        f = np.divide((1 + BETA) * precision * recall, denominator, out=np.zeros(LEVELS), where=denominator > 0)
        for name, curve in (("precision", precision), ("recall", recall), ("f", f)):
            self._sums[name] += curve
        inter, area = tp[HALF], predicted[HALF]
        union = area + gt_area - inter
        self._iou += inter / union if union else 1.0
        self._accuracy += 1.0 - (area + gt_area - 2 * inter) / pred.size
        self.count += 1

    def curves(self) -> dict[str, np.ndarray]:
        """Per-image mean precision, recall and F at ``v >= t``, from t = 255 down to 0 (pysodmetrics' order)."""
        return {name: total[::-1] / self.count for name, total in self._sums.items()}

    def results(self) -> dict[str, float]:
        f = self._sums["f"][1:] / self.count  # the paper's 255 thresholds: v > k, k = 0..254
        return {
            "max_f": float(f.max()),
            "mean_f": float(f.mean()),
            "iou": float(self._iou / self.count),
            "accuracy": float(self._accuracy / self.count),
        }


class SODMetrics:
    """Accumulate one benchmark's metrics image by image under ``protocol`` (one of :data:`PROTOCOLS`);
    :meth:`results` gives the scalars, :meth:`curves` the dataset-mean curves."""

    def __init__(self, protocol: str = PYSODMETRICS):
        if protocol not in PROTOCOLS:
            raise SynthsodError(f"unknown evaluation protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")
        self.protocol = protocol
        self._paper = PaperMetrics() if protocol == EBIGBIGAN else None
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
        if self._paper is not None:
            self._paper.step(pred, gt)
        self.count += 1

    def curves(self) -> dict[str, np.ndarray]:
        """Dataset-mean curves over the 256 thresholds: precision, recall, F, E, TPR, FPR."""
        self._require()
        curves = self._curves(self._v2.get_results(), self._em.get_results()["em"])
        return curves if self._paper is None else {**curves, **self._paper.curves()}

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
            **(self._paper.results() if self._paper is not None else {}),
        }

    def _require(self) -> None:
        if self.count == 0:
            raise SynthsodError("no image was evaluated")


__all__ = ["BETA", "EBIGBIGAN", "PROTOCOLS", "PYSODMETRICS", "SCALARS", "PaperMetrics", "SODMetrics"]
