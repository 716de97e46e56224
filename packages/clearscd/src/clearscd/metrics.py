"""Metrics of ClearSCD (spec f): the evaluator classes of ``utils/evaluator.py`` and the ``test.py`` protocol.

All metrics are dataset-level: confusion matrices (rows = ground truth, columns = prediction, int64 counts) are
accumulated over every pixel, and a pixel enters a matrix only when its ground-truth code is in [0, n).

``SCDTestMetrics(protocol="authors")`` reproduces ``test.py`` exactly, quirks included (spec pitfall 9): mIoU counts
absent classes as 0, mean F1 is a plain mean of 5-decimal-rounded values, the consistency means divide by
"distinct gt codes − 1", Overall_Score combines already-rounded percentages, diagonal "changed" pairs alias other
change-type codes. ``protocol="corrected"`` (labelled as such in its output) changes the three aggregation quirks
that are plain bugs: class means over classes present in gt or prediction, consistency means over the labelled gt
codes actually seen, Overall scores from unrounded values. Everything else is shared.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from semcommon.metrics import ConfusionMatrix

__all__ = [
    "RES_DICT_KEYS",
    "BCDEvaluator",
    "SCDChangeEvaluator",
    "SCDNoChangeEvaluator",
    "SCDTestMetrics",
    "SCDTestResult",
    "SEGEvaluator",
    "change_type_codes",
    "cohen_kappa",
    "nochange_type_codes",
    "scd_test_metrics",
]

RES_DICT_KEYS: tuple[str, ...] = (
    "BCD_IoU", "BCD_F1", "BCD_IoU_mod", "BCD_F1_mod", "SEG_mIoU", "SEG_mF1", "SCD_Sek", "SCD_Sek_mod", "Kappa",
    "Overall_Score", "Overall_Score_mod", "binary_consistency", "change_consistency", "nochange_consistency",
)  # fmt: skip


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den == 0, 0.0, num / np.where(den == 0, 1, den))


class SEGEvaluator:
    """``SEGEvaluator(num_class)``: the original's metric methods and rounding on top of the common
    :class:`semcommon.metrics.ConfusionMatrix` (which does the accumulation; ``confusion_matrix`` is its matrix)."""

    def __init__(self, num_class: int) -> None:
        self.num_class = num_class
        self._matrix = ConfusionMatrix(num_class)

    @property
    def confusion_matrix(self) -> np.ndarray:
        """num_class×num_class counts (rows = gt, columns = prediction)."""
        return self._matrix.matrix

    @confusion_matrix.setter
    def confusion_matrix(self, value: np.ndarray) -> None:
        self._matrix.matrix = np.asarray(value, dtype=np.int64).copy()

    def reset(self) -> None:
        self._matrix.reset()

    def add_batch(self, gt: Any, pred: Any) -> None:
        """Accumulate one image or batch; gt codes outside [0, num_class) are dropped, predictions must be valid."""
        self._matrix.update(pred, gt)

    @property
    def tp(self) -> np.ndarray:
        return np.diag(self.confusion_matrix)

    @property
    def fp(self) -> np.ndarray:
        return self.confusion_matrix.sum(0) - self.tp

    @property
    def fn(self) -> np.ndarray:
        return self.confusion_matrix.sum(1) - self.tp

    def overall_accuracy(self) -> float:
        """ΣTP / Σ, rounded to 5 decimals."""
        return float(np.round(self.tp.sum() / self.confusion_matrix.sum(), 5))

    def precision(self) -> np.ndarray:
        return np.round(_safe_div(self.tp, self.tp + self.fp), 5)

    def recall(self) -> np.ndarray:
        return np.round(_safe_div(self.tp, self.tp + self.fn), 5)

    def intersection_over_union(self) -> np.ndarray:
        """Per-class IoU, 0 where TP+FP+FN = 0, unrounded."""
        return _safe_div(self.tp, self.tp + self.fp + self.fn)

    def mean_intersection_over_union(self) -> float:
        """Mean over ALL classes (absent classes count as 0), rounded to 5 decimals."""
        return float(np.round(np.nanmean(self.intersection_over_union()), 5))

    def f1_score(self) -> np.ndarray:
        """2TP / (2TP+FP+FN), rounded to 5 decimals; NaN for a class absent from gt and prediction."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.round(2 * self.tp / (2 * self.tp + self.fp + self.fn), 5)


class BCDEvaluator(SEGEvaluator):
    """``BCDEvaluator``: like :class:`SEGEvaluator` (2 classes) but IoU, F1, precision, recall of the change class."""

    def __init__(self, num_class: int = 2) -> None:
        super().__init__(num_class)

    def precision(self) -> float:  # type: ignore[override]
        return float(super().precision()[-1])

    def recall(self) -> float:  # type: ignore[override]
        return float(super().recall()[-1])

    def intersection_over_union(self) -> float:  # type: ignore[override]
        return float(np.round(super().intersection_over_union()[1], 5))

    def f1_score(self) -> float:  # type: ignore[override]
        return float(super().f1_score()[-1])


class _CodeListMixin(SEGEvaluator):
    """Also remembers the distinct gt codes of every added batch (including dropped codes)."""

    def __init__(self, num_class: int) -> None:
        super().__init__(num_class)
        self.class_list: set[int] = set()

    def reset(self) -> None:
        super().reset()
        self.class_list.clear()

    def add_batch(self, gt: Any, pred: Any) -> None:
        super().add_batch(gt, pred)
        self.class_list.update(int(v) for v in np.unique(np.asarray(gt)))

    def mean_over_seen_codes(self, iou: np.ndarray | None = None) -> float:
        """Σ IoU (NaN-safe) / (distinct gt codes seen − 1), rounded to 5 decimals (the original's mean)."""
        iou = self.intersection_over_union() if iou is None else iou
        with np.errstate(divide="ignore", invalid="ignore"):  # one distinct code: divides by 0, as the original
            return float(np.round(np.nansum(iou) / np.float64(len(self.class_list) - 1), 5))


class SCDChangeEvaluator(_CodeListMixin):
    """``SCD_Change_Evaluator`` (change-type consistency, mIoU_sc)."""

    def mean_intersection_over_union(self) -> float:
        return self.mean_over_seen_codes()


class SCDNoChangeEvaluator(_CodeListMixin):
    """``SCD_NoChange_Evaluator`` (no-change-type consistency, mIoU_nc); its mean uses an IoU list whose last
    entry the test protocol replaces by the BCD change IoU."""

    def mean_intersection_over_union(self, iou: np.ndarray | None = None) -> float:
        return self.mean_over_seen_codes(iou)


def _diagonals(num_classes: int) -> np.ndarray:
    return np.arange(num_classes) * (num_classes + 1)


def change_type_codes(
    t1: np.ndarray, t2: np.ndarray, change_map: np.ndarray, bcd_label: np.ndarray, num_classes: int
) -> np.ndarray:
    """``cal_change_type``: off-diagonal transition codes 0..C(C−1)−1; C(C−1)+1 where bcd_label = 255; C(C−1) where
    the change map is 0 (applied last). A diagonal pair with change 1 aliases code C·t1 (quirk kept)."""
    from_to = t1.astype(np.int64) * num_classes + t2.astype(np.int64)
    codes = from_to - np.searchsorted(_diagonals(num_classes), from_to)
    codes[bcd_label == 255] = num_classes * (num_classes - 1) + 1
    codes[change_map == 0] = num_classes * (num_classes - 1)
    return codes


def nochange_type_codes(
    t1: np.ndarray, t2: np.ndarray, change_map: np.ndarray, bcd_label: np.ndarray, num_classes: int
) -> np.ndarray:
    """``cal_nochange_type``: diagonal pair (k, k) → k; C ("changed") for off-diagonal pairs with change 0;
    C+1 where bcd_label = 255; C wherever the change map is 1 (applied last)."""
    from_to = t1.astype(np.int64) * num_classes + t2.astype(np.int64)
    diagonals = _diagonals(num_classes)
    codes = np.searchsorted(diagonals, from_to).astype(np.int64)
    codes[~np.isin(from_to, diagonals) & (change_map == 0)] = num_classes
    codes[bcd_label == 255] = num_classes + 1
    codes[change_map == 1] = num_classes
    return codes


def cohen_kappa(hist: np.ndarray) -> float:
    """κ = (p_o − p_e) / (1 − p_e) of a confusion matrix (0 when empty or p_e = 1), as ``cal_kappa``."""
    hist = np.asarray(hist, dtype=np.float64)
    total = hist.sum()
    if total == 0:
        return 0.0
    p_o = np.trace(hist) / total
    p_e = float(hist.sum(1) @ hist.sum(0)) / total**2
    return 0.0 if p_e == 1 else float((p_o - p_e) / (1 - p_e))


@dataclass
class SCDTestResult:
    """``summary``: the 14 printed numbers (percent, 2 decimals) in test.py order; ``raw``: fractions/intermediates."""

    protocol: str
    summary: dict[str, float] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)


class SCDTestMetrics:
    """The ``test.py`` evaluation protocol (Hi-UCD style data: unlabelled = ``num_classes``, BCD ignore = 255).

    ``update(labels_A, labels_B, labels_BCD, preds_A, preds_B, change_mask)`` with int arrays of equal shape
    (N×H×W or H×W; preds in [0, C), change mask 0/1), then ``compute()``. ``dataset="SECOND"`` treats unlabelled
    pixels as no change instead of dropping them.
    """

    def __init__(self, num_classes: int = 9, protocol: str = "authors", dataset: str = "HiUCD") -> None:
        if protocol not in ("authors", "corrected"):
            raise ValueError(f"protocol must be 'authors' or 'corrected', got {protocol!r}")
        if dataset not in ("HiUCD", "Nanjing", "SECOND"):
            raise ValueError(f"dataset must be 'HiUCD', 'Nanjing' or 'SECOND', got {dataset!r}")
        self.num_classes = c = num_classes
        self.protocol = protocol
        self.dataset = dataset
        self.scd = SEGEvaluator(c * c + 1)
        self.seg_pair = SEGEvaluator(c)
        self.bcd = SEGEvaluator(2)
        self.binary_consist = SEGEvaluator(2)
        self.change_consist = SCDChangeEvaluator(c * (c - 1) + 1)
        self.nochange_consist = SCDNoChangeEvaluator(c + 1)
        self.invalid_area_sum = 0
        self.right_bcd_area_sum = 0

    def update(
        self,
        labels_A: Any,
        labels_B: Any,
        labels_BCD: Any,
        preds_A: Any,
        preds_B: Any,
        change_mask: Any,
    ) -> None:
        arrays = {
            "labels_A": labels_A, "labels_B": labels_B, "labels_BCD": labels_BCD,
            "preds_A": preds_A, "preds_B": preds_B, "change_mask": change_mask,
        }  # fmt: skip
        arrays = {k: np.asarray(v).astype(np.int64) for k, v in arrays.items()}
        shape = arrays["labels_A"].shape
        for name, value in arrays.items():
            if value.shape != shape:
                raise ValueError(f"SCDTestMetrics.update: {name} has shape {value.shape}, labels_A has {shape}")
        gA, gB, gBCD = arrays["labels_A"], arrays["labels_B"], arrays["labels_BCD"]
        pA, pB, mask = arrays["preds_A"], arrays["preds_B"], arrays["change_mask"]
        c = self.num_classes
        if pA.min(initial=0) < 0 or pA.max(initial=0) >= c or pB.min(initial=0) < 0 or pB.max(initial=0) >= c:
            raise ValueError(f"SCDTestMetrics.update: preds_A / preds_B must lie in [0, {c})")
        if not np.isin(mask, (0, 1)).all():
            raise ValueError("SCDTestMetrics.update: change_mask must be 0/1")

        pcc = 1 - (pA == pB).astype(np.int64)
        valid_change = (gBCD * mask * (gBCD != 255)) == 1
        self.invalid_area_sum += int((pA[valid_change] == pB[valid_change]).sum())
        self.right_bcd_area_sum += int(valid_change.sum())

        label_scd = gA * c + gB
        pred_scd = pA * c + pB
        unlabelled = (gA == c) | (gB == c)
        if self.dataset == "SECOND":
            label_scd[unlabelled] = c * c
        else:
            label_scd[unlabelled] = 999
            label_scd[(gA == gB) & (label_scd != 999)] = c * c
        pred_scd[mask == 0] = c * c

        self.seg_pair.add_batch(np.concatenate([gA, gB]), np.concatenate([pA, pB]))
        self.scd.add_batch(label_scd, pred_scd)
        self.bcd.add_batch(gBCD, mask)
        self.binary_consist.add_batch(mask, pcc)
        self.change_consist.add_batch(
            change_type_codes(gA, gB, gBCD, gBCD, c), change_type_codes(pA, pB, mask, gBCD, c)
        )
        self.nochange_consist.add_batch(
            nochange_type_codes(gA, gB, gBCD, gBCD, c), nochange_type_codes(pA, pB, mask, gBCD, c)
        )

    def compute(self) -> SCDTestResult:
        c = self.num_classes
        corrected = self.protocol == "corrected"
        scd = self.scd.confusion_matrix.copy()
        oa_scd = float(np.trace(scd) / scd.sum()) if scd.sum() else 0.0
        kappa_trad = cohen_kappa(scd)
        scd[c * c, c * c] = 0
        kappa_nuc = cohen_kappa(scd)

        bcd_iou = self.bcd.intersection_over_union()
        iou_change, iou_nochange = float(bcd_iou[1]), float(bcd_iou[0])
        f1_change = float(self.bcd.f1_score()[1])
        sek = kappa_nuc * math.exp(iou_change) / math.e

        bcd_mod = SEGEvaluator(2)
        bcd_mod.confusion_matrix = self.bcd.confusion_matrix.copy()
        bcd_mod.confusion_matrix[1, 1] -= self.invalid_area_sum
        bcd_mod.confusion_matrix[0, 1] += self.invalid_area_sum
        iou_change_mod = float(bcd_mod.intersection_over_union()[1])
        f1_change_mod = float(bcd_mod.f1_score()[1])
        sek_mod = kappa_nuc * math.exp(iou_change_mod) / math.e

        nochange_iou = self.nochange_consist.intersection_over_union().copy()
        nochange_iou[-1] = iou_change
        if corrected:
            seg_iou, seg_f1 = self._present_class_means(self.seg_pair)
            change_consistency = self._mean_over_labelled_codes(self.change_consist)
            nochange_consistency = self._mean_over_labelled_codes(self.nochange_consist, nochange_iou)
        else:
            seg_iou = self.seg_pair.mean_intersection_over_union()
            seg_f1 = float(self.seg_pair.f1_score().mean())
            change_consistency = self.change_consist.mean_intersection_over_union()
            nochange_consistency = self.nochange_consist.mean_intersection_over_union(nochange_iou)
        binary_consistency = self.binary_consist.mean_intersection_over_union()

        pct = {
            "BCD_IoU": iou_change, "BCD_F1": f1_change, "BCD_IoU_mod": iou_change_mod, "BCD_F1_mod": f1_change_mod,
            "SEG_mIoU": seg_iou, "SEG_mF1": seg_f1, "SCD_Sek": sek, "SCD_Sek_mod": sek_mod, "Kappa": kappa_trad,
        }  # fmt: skip
        summary = {k: float(np.round(v * 100, 2)) for k, v in pct.items()}
        if corrected:
            overall = 100 * (0.3 * iou_change + 0.7 * sek)
            overall_mod = 100 * (0.3 * iou_change_mod + 0.7 * sek_mod)
        else:
            overall = 0.3 * summary["BCD_IoU"] + 0.7 * summary["SCD_Sek"]
            overall_mod = 0.3 * summary["BCD_IoU_mod"] + 0.7 * summary["SCD_Sek_mod"]
        summary["Overall_Score"] = float(np.round(overall, 2))
        summary["Overall_Score_mod"] = float(np.round(overall_mod, 2))
        summary["binary_consistency"] = float(np.round(binary_consistency * 100, 2))
        summary["change_consistency"] = float(np.round(change_consistency * 100, 2))
        summary["nochange_consistency"] = float(np.round(nochange_consistency * 100, 2))
        summary = {k: summary[k] for k in RES_DICT_KEYS}

        raw = {
            "OA_scd": oa_scd, "kappa_trad": kappa_trad, "kappa_nuc": kappa_nuc, "IoU_change": iou_change,
            "IoU_nochange": iou_nochange, "IoU_mean": self.bcd.mean_intersection_over_union(),
            "F1_change": f1_change, "Sek": sek, "IoU_change_mod": iou_change_mod, "F1_change_mod": f1_change_mod,
            "Sek_mod": sek_mod, "seg_pair_IoU": seg_iou, "seg_pair_F1": seg_f1,
            "binary_consistency": binary_consistency, "change_consistency": change_consistency,
            "nochange_consistency": nochange_consistency, "invalid_area_sum": float(self.invalid_area_sum),
            "right_BCD_area_sum": float(self.right_bcd_area_sum), "confusion_scd_nochange_zeroed": scd,
            "confusion_bcd_modified": bcd_mod.confusion_matrix,
        }  # fmt: skip
        return SCDTestResult(protocol=self.protocol, summary=summary, raw=raw)

    @staticmethod
    def _present_class_means(evaluator: SEGEvaluator) -> tuple[float, float]:
        """Corrected: mean IoU / F1 over classes present in gt or prediction (unrounded)."""
        present = (evaluator.confusion_matrix.sum(0) + evaluator.confusion_matrix.sum(1)) > 0
        if not present.any():
            return 0.0, 0.0
        iou = evaluator.intersection_over_union()[present]
        tp, fp, fn = evaluator.tp[present], evaluator.fp[present], evaluator.fn[present]
        f1 = 2 * tp / (2 * tp + fp + fn)
        return float(iou.mean()), float(f1.mean())

    @staticmethod
    def _mean_over_labelled_codes(evaluator: _CodeListMixin, iou: np.ndarray | None = None) -> float:
        """Corrected: mean IoU over the labelled gt codes actually seen (codes < num_class), unrounded."""
        iou = evaluator.intersection_over_union() if iou is None else iou
        seen = sorted(code for code in evaluator.class_list if 0 <= code < evaluator.num_class)
        return float(np.mean(iou[seen])) if seen else 0.0


def scd_test_metrics(
    labels_A: Any,
    labels_B: Any,
    labels_BCD: Any,
    preds_A: Any,
    preds_B: Any,
    change_mask: Any,
    num_classes: int = 9,
    protocol: str = "authors",
    dataset: str = "HiUCD",
) -> SCDTestResult:
    """One-shot :class:`SCDTestMetrics` over whole arrays (results are dataset-level, so batching does not matter)."""
    metrics = SCDTestMetrics(num_classes, protocol=protocol, dataset=dataset)
    metrics.update(labels_A, labels_B, labels_BCD, preds_A, preds_B, change_mask)
    return metrics.compute()
