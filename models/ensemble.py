"""The combined forecast: every SKU's blend of fitted members, weighted by how each did on
that SKU lately, with an interval calibrated on the shop's own recent errors. Pure functions.

Design (issue 13; the measurements are in docs/benchmarks.md,
what was tried in docs/forecasting-experiments.md):

- **Members** (:mod:`models.members`) are fitted every night on all of a shop's SKUs. Which
  of them a SKU may blend depends on its demand class (Syntetos–Boylan, from ADI and CV² of
  its last year): smooth and erratic sellers blend ETS, Theta, Prophet and the shop's
  top-down share; intermittent and lumpy ones Croston SBA, TSB, ETS, Prophet and the shop
  share. Prophet is there for the sparse sellers whose demand moves with a trend (a
  collection selling out its season: fashion −5.6 % MASE), its mean held to the SKU's best
  28 days in a row (:func:`models.members.prophet_member`).
- **Weights** come from the members' own errors: the member forecasts of the nightly run
  made VALIDATION_DAYS before are stored, so once those days have sold, what each member
  forecast for them is set against what sold, without any refit. The weights are
  those that would have made the best blend of those days (least squares, non-negative,
  summing to one): pooled over the shop's SKUs of the same member set first, which is stable,
  then moved per SKU by its own days, at the level least squares sets but in the shape
  absolute error prefers (:func:`_moved_by_own_days`). Fitting the blend rather than ranking
  the members matters: every member's squared error is mostly the noise of daily sales, so
  weights from inverse errors come out nearly equal even when one member is plainly better. A SKU
  launched in the last eight weeks is pooled with the other launches, and may blend how the
  shop's earlier launches sold on at its age (:func:`fit_weights`).
  ``forecast evaluate`` applies the same rule to the forecasts made at its earlier origins.
- **Closed days** (:mod:`models.shop_calendar`) are forecast at zero.
- **Intervals**: each SKU's past blend errors, divided by the square root of what was
  forecast (count data vary with their level), give its spread; the shop's pooled 10th and
  90th percentiles of errors in units of that spread give the interval. The interval is thus
  measured on the same kind of errors it must cover: 28-day-ahead errors of the blend. A day
  whose lower bound is held at zero (a slow seller) cannot miss below, so its upper bound is
  the 80th percentile of such days' errors, not the 90th: a band of [0, 90th percentile]
  held 82-87 % of slow sellers' days. The spread itself, the SKU's root mean square
  error, is what inventory policy takes for the forecast's uncertainty (:func:`daily_sd`).
  A day the year-end season (:mod:`models.season`) multiplied gets its band multiplied too.

>>> sold = np.array([3., 5, 4, 6, 2, 4, 5, 3])
>>> right, off = sold + 0.1, sold[::-1]
>>> past = Validation({"ets": off, "shop": right}, sold, np.ones(8, bool))
>>> {m: round(w, 2) for m, w in fit_weights({"sku": (("ets", "shop"), [past])})["sku"].items()}
{'ets': 0.0, 'shop': 1.0}
>>> fit_weights({"new": (("ets", "shop"), [])})["new"]
{'ets': 0.5, 'shop': 0.5}
"""

from __future__ import annotations

from collections.abc import Collection, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, NamedTuple, TypeVar

import numpy as np

from models.forecast import Forecast

VALIDATION_DAYS = 28
# The run made 28 days before only: an older one as well gave worse MASE on every data set
# tried, the most where a shop changes course (docs/forecasting-experiments.md).
VALIDATION_RUNS = 1
MIN_SCORED_DAYS = 7  # fewer sellable days in a validation window: not scored
SMOOTH_MEMBERS = ("ets", "theta", "prophet", "shop", "river")
INTERMITTENT_MEMBERS = ("croston_sba", "tsb", "ets", "prophet", "shop", "river")
# A launch (fit_weights) may blend these as well.
LAUNCH_MEMBERS = ("lifecycle",)
MEMBERS = ("ets", "theta", "prophet", "shop", "river", "croston_sba", "tsb", *LAUNCH_MEMBERS)
ADI_CUT, CV2_CUT = 1.32, 0.49  # Syntetos & Boylan (2005)
SPARSE_CLASSES = ("intermittent", "lumpy")
CLASS_DAYS = 365
# The pull towards the pooled weights grows with a SKU's own days, at a tenth of their weight:
# two months of one SKU's noisy days move its weights, a week does not.
POOL_PULL_PER_DAY = 0.1
SIZE_FLOOR = 0.5  # units: the size a slow SKU's days are measured in is at least this
INTERVAL = (0.10, 0.90)
ONE_SIDED = 0.80  # the upper quantile of a band whose lower bound is zero
SPREAD_FLOOR = 0.25  # units: keeps the spread of a SKU forecast at zero above zero
WHOLE_UNIT_SLACK = 1e-9  # a bound of 3 computed as 2.9999999 is 3
FALLBACK_QUANTILES = (-1.2816, 1.2816, 0.8416)  # normal, until a shop has errors to pool
K = TypeVar("K", bound=Hashable)


def demand_class(y: np.ndarray, sellable: np.ndarray) -> str:
    """Syntetos–Boylan class of the last CLASS_DAYS sellable days.

    >>> demand_class(np.array([3., 4, 3, 5, 4, 3, 4]), np.ones(7, bool))
    'smooth'
    >>> demand_class(np.array([0., 0, 1, 0, 0, 1, 0, 0, 12]), np.ones(9, bool))
    'lumpy'
    """
    days = np.asarray(y, dtype=float)[np.asarray(sellable, dtype=bool)][-CLASS_DAYS:]
    sizes = days[days > 0]
    if sizes.size < 2:
        return "intermittent"
    adi = days.size / sizes.size
    cv2 = float((sizes.std() / sizes.mean()) ** 2)
    if adi < ADI_CUT:
        return "smooth" if cv2 < CV2_CUT else "erratic"
    return "intermittent" if cv2 < CV2_CUT else "lumpy"


def allowed_members(demand: str) -> tuple[str, ...]:
    return INTERMITTENT_MEMBERS if demand in SPARSE_CLASSES else SMOOTH_MEMBERS


@dataclass(frozen=True)
class Validation:
    """What a past run's members forecast for one SKU over the days since, and what sold;
    ``scored`` marks the days that could sell."""

    forecasts: Mapping[str, np.ndarray]
    actual: np.ndarray
    scored: np.ndarray

    def usable(self) -> bool:
        return int(self.scored.sum()) >= MIN_SCORED_DAYS


def _rows(
    validations: Sequence[Validation], members: Sequence[str]
) -> tuple[np.ndarray, np.ndarray] | None:
    """The scored days of the usable validations as (forecasts by member, actual), in units of
    the SKU's own size so that a big seller does not outweigh every small one."""
    xs, ys = [], []
    for v in validations:
        if not v.usable() or not all(m in v.forecasts for m in members):
            continue
        x = np.stack([np.asarray(v.forecasts[m], dtype=float) for m in members], axis=1)[v.scored]
        if not np.all(np.isfinite(x)):
            continue
        xs.append(x)
        ys.append(v.actual[v.scored])
    if not xs:
        return None
    x, y = np.vstack(xs), np.concatenate(ys)
    size = float(np.sqrt(np.mean(y**2))) + SIZE_FLOOR
    return x / size, y / size


def _simplex_least_squares(
    x: np.ndarray, y: np.ndarray, prior: np.ndarray | None = None, strength: float = 0.0
) -> np.ndarray:
    """Non-negative weights summing to one that minimise ‖x·w − y‖² (+ strength·‖w − prior‖²):
    NNLS with the sum held by one heavily weighted row."""
    from scipy.optimize import nnls

    m = x.shape[1]
    rows, targets = [x], [y]
    if prior is not None and strength > 0:
        rows.append(np.sqrt(strength) * np.eye(m))
        targets.append(np.sqrt(strength) * prior)
    heavy = 1e3 * max(1.0, float(np.abs(x).max(initial=0.0)))
    rows.append(np.full((1, m), heavy))
    targets.append(np.array([heavy]))
    w, _ = nnls(np.vstack(rows), np.concatenate(targets), maxiter=50 * m)
    total = w.sum()
    return w / total if total > 0 else np.full(m, 1.0 / m)


def _moved_by_own_days(x: np.ndarray, y: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """One SKU's weights, moved from the pool's ``prior`` by its own days (rows ``x``, sales
    ``y``): as much as squared error says, shaped by absolute error.

    Least squares (pulled towards ``prior``) decides the blend's level over the SKU's days:
    the mean, which stock cover needs. Among the weights that keep that level, the ones with
    the least absolute error, pulled towards ``prior`` by POOL_PULL_PER_DAY per day in units
    of the SKU's own absolute error, are taken. On a few weeks of one lumpy SKU, squared error
    is all its few large days: an order a day late costs a forecast on the right weekday as
    much as a flat forecast costs all month, so least squares alone mixed flat members into
    sellers whose customers order on fixed weekdays (B2B shop: MASE 0.810 -> 0.753,
    docs/forecasting-experiments.md). Absolute error alone fitted the median, lower than the
    mean: biases fell by up to 2.6 points, and its gains elsewhere were that lower level.

    A linear programme: weights w >= 0, over- and under-forecast e+, e- >= 0 per day, moves
    from the prior d+, d- >= 0 per member."""
    from scipy.optimize import linprog

    strength = y.size * POOL_PULL_PER_DAY
    level_weights = _simplex_least_squares(x, y, prior, strength)
    n, m = x.shape
    pull = strength * float(np.mean(np.abs(x @ prior - y)))
    cost = np.concatenate([np.zeros(m), np.ones(2 * n), np.full(2 * m, pull)])
    zeros_nm, eye_n, eye_m = np.zeros((n, 2 * m)), np.eye(n), np.eye(m)
    equalities = np.vstack(
        [
            np.hstack([x, -eye_n, eye_n, zeros_nm]),  # x·w - y = e+ - e-
            np.hstack([eye_m, np.zeros((m, 2 * n)), -eye_m, eye_m]),  # w - prior = d+ - d-
            np.concatenate([np.ones(m), np.zeros(2 * n + 2 * m)])[None, :],
            np.concatenate([x.sum(axis=0), np.zeros(2 * n + 2 * m)])[None, :],
        ]
    )
    targets = np.concatenate([y, prior, [1.0, float(x.sum(axis=0) @ level_weights)]])
    solved = linprog(cost, A_eq=equalities, b_eq=targets, bounds=(0, None), method="highs")
    if not solved.success:
        return level_weights
    w = np.maximum(solved.x[:m], 0)
    total = w.sum()
    return w / total if total > 0 else level_weights


def fit_weights(
    skus: Mapping[K, tuple[Sequence[str], Sequence[Validation]]],
    launches: Collection[K] = (),
    missing: Mapping[K, Collection[str]] | None = None,
    lifecycle_trust: Mapping[K, float] | None = None,
) -> dict[K, dict[str, float]]:
    """Each SKU's member weights, from its allowed members and their validations.

    SKUs allowed the same members are pooled: the weights that would have made the best blend
    over all their validation days (least squares on the simplex) are the prior, and each SKU's
    own days move its weights from there (:func:`_moved_by_own_days`). A SKU without
    validation days takes the pooled weights; a pool without any, equal weights; a member
    without any, an equal share (:func:`_validated`).

    ``missing``: the members that cannot forecast a SKU (Prophet before a SKU has 30 days).
    Its weights are the best blend of the members it has, on the same days. Spreading a
    missing member's weight over the others in proportion left a launch whose pool gave
    Prophet 0.86 with whatever the rest had been given beside it, one member's forecast alone.

    ``launches`` (SKUs that first sold within the shop member's window,
    :func:`models.members.established`) take their prior from the launches' validations
    alone, when there are any: what forecast the shop's products well in their first weeks,
    not what forecasts its long sellers. Pooled with the long sellers, a launch took weights
    fitted almost wholly on them, and every member over-forecasts a collection whose sales
    fade after its first weeks. The launches' days move their weights from the whole pool's
    as one SKU's days move its own: a pool of one or two launches would otherwise be all
    noise. A launch may also blend LAUNCH_MEMBERS: how the shop's earlier launches sold on
    (:func:`models.members.lifecycle_member`), weighted by its record on launches like any
    other member (docs/forecasting-experiments.md, *Launches weighted by launches*).

    ``lifecycle_trust`` (:func:`models.members.lifecycle_trust`): when no launch has a record
    yet (a shop's collections come twice a year, and the stored runs go back 90 days), a
    launch's blend goes that far to the lifecycle member from the whole pool's: the long
    sellers' weights say nothing of how new products fade, the earlier launches' sales do
    (docs/forecasting-experiments.md, *Launches without a record*)."""
    groups: dict[tuple[str, ...], list[K]] = {}
    for key, (allowed, _) in skus.items():
        groups.setdefault(tuple(allowed), []).append(key)
    out: dict[K, dict[str, float]] = {}
    for allowed, keys in groups.items():
        pools = _Pools({k: skus[k][1] for k in keys}, launches)
        for k in keys:
            cannot = missing.get(k, ()) if missing is not None else ()
            launch = k in launches
            members_of_k = tuple(
                m for m in (*allowed, *(LAUNCH_MEMBERS if launch else ())) if m not in cannot
            ) or tuple(allowed)
            pool = pools.of(members_of_k, launch)
            own = pool.rows.get(k)
            w = pool.weights
            if own is not None:
                w = _moved_by_own_days(own[0], own[1], w)
            out[k] = _shares(pool.members, w, members_of_k)
            trust = lifecycle_trust.get(k, 0.0) if lifecycle_trust is not None else 0.0
            lifecycle = set(LAUNCH_MEMBERS) & set(members_of_k)
            if launch and trust > 0 and lifecycle and pools.unrecorded(members_of_k):
                out[k] = {
                    m: (1 - trust) * x + (trust / len(lifecycle) if m in lifecycle else 0.0)
                    for m, x in out[k].items()
                }
    return out


class _Pools(Generic[K]):
    """The pools of one group of SKUs (allowed the same members), by the members blended and
    whether for launches, each made once."""

    def __init__(
        self, validations: Mapping[K, Sequence[Validation]], launches: Collection[K]
    ) -> None:
        self.everyone = validations
        self.launched = {k: v for k, v in validations.items() if k in launches}
        self.made: dict[tuple[tuple[str, ...], bool], _Pool[K]] = {}
        self.without_record: set[tuple[str, ...]] = set()

    def unrecorded(self, members: tuple[str, ...]) -> bool:
        """Whether the launches blending ``members`` had no record and took the whole
        pool's weights (asked after :meth:`of`)."""
        return members in self.without_record

    def of(self, members: tuple[str, ...], launch: bool) -> _Pool[K]:
        key = (members, launch)
        if key not in self.made:
            if launch:
                whole = self.of(tuple(m for m in members if m not in LAUNCH_MEMBERS), False)
                apart = _Pool.of(
                    members, self.launched, _shares(whole.members, whole.weights, members)
                )
                self.made[key] = apart if apart.found else whole
                if not apart.found:
                    self.without_record.add(members)
            else:
                self.made[key] = _Pool.of(members, self.everyone)
        return self.made[key]


def _shares(
    members: Sequence[str], weights: np.ndarray, allowed: Sequence[str]
) -> dict[str, float]:
    """Weights over ``allowed`` from those of the ``members`` with a record: a member without
    one keeps an equal share, as every member has in a pool without any; the ones with a
    record split the rest by it."""
    share = len(members) / len(allowed)
    out = dict.fromkeys(allowed, 1.0 / len(allowed))
    out |= {m: share * float(x) for m, x in zip(members, weights, strict=True)}
    return out


@dataclass(frozen=True)
class _Pool(Generic[K]):
    """Validations pooled over SKUs allowed the same members: the members with a record,
    each SKU's scored days in them, and the weights fitted on all of those days (moved from
    ``prior``, when given, as :func:`fit_weights` moves one SKU's)."""

    members: tuple[str, ...]
    rows: dict[K, tuple[np.ndarray, np.ndarray]]
    weights: np.ndarray
    found: bool

    @staticmethod
    def of(
        allowed: Sequence[str],
        validations: Mapping[K, Sequence[Validation]],
        prior: Mapping[str, float] | None = None,
    ) -> _Pool[K]:
        members = _validated(allowed, [v for vs in validations.values() for v in vs])
        rows = {k: r for k, vs in validations.items() if (r := _rows(vs, members)) is not None}
        if not rows:
            return _Pool(members, {}, np.full(len(members), 1.0 / len(members)), False)
        x = np.vstack([r[0] for r in rows.values()])
        y = np.concatenate([r[1] for r in rows.values()])
        if prior is None:
            return _Pool(members, rows, _simplex_least_squares(x, y), True)
        start = np.array([prior[m] for m in members])
        total = start.sum()
        start = start / total if total > 0 else np.full(len(members), 1.0 / len(members))
        return _Pool(
            members, rows, _simplex_least_squares(x, y, start, y.size * POOL_PULL_PER_DAY), True
        )


def _validated(allowed: Sequence[str], validations: Sequence[Validation]) -> tuple[str, ...]:
    """The allowed members that forecast some usable validation's days: the ones with a
    record. A member without one (it could not fit a young shop's validation run yet, or was
    allowed after the stored runs were made, as Prophet for sparse sellers was) would
    otherwise have left every SKU of the pool at equal weights, for want of a validation with
    all of its members; now it takes an equal share and the others split the rest by their
    record. On an outside tester's 10-SKU shop of 120 days this moved MASE 1.012 -> 1.000
    and bias +11.2 % -> +7.9 %; no other shop tried moved (docs/forecasting-experiments.md)."""
    seen = {
        m
        for v in validations
        if v.usable()
        for m, f in v.forecasts.items()
        if np.all(np.isfinite(np.asarray(f, dtype=float)))
    }
    return tuple(m for m in allowed if m in seen) or tuple(allowed)


def effective_weights(
    forecasts: Mapping[str, np.ndarray], member_weights: Mapping[str, float]
) -> dict[str, float]:
    """The weights as blended: a member without a forecast for this SKU (it could not fit it)
    gives its share to the others; with none weighted left, the present members share."""
    present = [m for m in forecasts if np.all(np.isfinite(forecasts[m]))]
    kept = {m: w for m, w in member_weights.items() if w > 0 and m in present}
    if not kept:
        kept = {m: 1.0 for m in member_weights if m in present} or dict.fromkeys(present, 1.0)
    if not kept:
        raise ValueError("no member forecast to blend")
    total = sum(kept.values())
    return {m: w / total for m, w in kept.items()}


def blend(forecasts: Mapping[str, np.ndarray], member_weights: Mapping[str, float]) -> np.ndarray:
    """The weighted mean of the members' forecasts, by :func:`effective_weights`."""
    weights = effective_weights(forecasts, member_weights)
    mean = np.zeros(np.asarray(forecasts[next(iter(weights))]).shape)
    for m, w in weights.items():
        mean += np.asarray(forecasts[m], dtype=float) * w
    return mean


def _scale(mean: np.ndarray) -> np.ndarray:
    return np.sqrt(np.maximum(mean, 0) + SPREAD_FLOOR)


@dataclass(frozen=True)
class PastErrors:
    """A SKU's validation days as the blend saw them: its errors (actual − forecast) over the
    square root of what it forecast, and what it forecast."""

    standardised: np.ndarray
    forecast: np.ndarray


def standardised_errors(
    validations: Sequence[Validation], member_weights: Mapping[str, float]
) -> PastErrors:
    """The blend's errors on the scored days of the usable validations."""
    errors, means = [], []
    for v in validations:
        if not v.usable():
            continue
        try:
            mean = blend(v.forecasts, member_weights)
        except ValueError:
            continue
        errors.append(((v.actual - mean) / _scale(mean))[v.scored])
        means.append(mean[v.scored])
    if not errors:
        return PastErrors(np.array([]), np.array([]))
    return PastErrors(np.concatenate(errors), np.concatenate(means))


def spread(errors: PastErrors) -> float | None:
    """A SKU's spread: the root mean square of its standardised errors."""
    e = errors.standardised
    return float(np.sqrt(np.mean(e**2))) if e.size >= MIN_SCORED_DAYS else None


def daily_sd(
    mean: np.ndarray, sku_spread: float | None, season: np.ndarray | None = None
) -> np.ndarray:
    """The standard deviation of each day's demand around ``mean``: the SKU's spread (1, as
    for Poisson counts, until it has one) in the units its errors were measured in.

    ``season`` is what the year-end season (:mod:`models.season`) multiplied each day by. It
    scales the whole day, its uncertainty too: the spread was measured on the weeks before,
    at their level, and a rush of three times is not three times as many independent sales
    but the same shop's demand scaled, errors and all. Scaling only the mean (the spread
    grows with its square root) left the December folds of the shops with a rush at 63-70 %
    coverage (docs/forecasting-experiments.md).

    >>> daily_sd(np.array([4.0, 12.0]), 1.0).round(2).tolist()
    [2.06, 3.5]
    >>> daily_sd(np.array([4.0, 12.0]), 1.0, season=np.array([1.0, 3.0])).round(2).tolist()
    [2.06, 6.18]
    """
    mean = np.asarray(mean, dtype=float)
    sd = sku_spread if sku_spread is not None else 1.0
    if season is None:
        return _scale(mean) * sd
    season = np.asarray(season, dtype=float)[: mean.size]
    unscaled = np.divide(mean, season, out=mean.copy(), where=season > 0)
    return np.where(season > 0, season, 1.0) * _scale(unscaled) * sd


def season_effect(
    members: Mapping[str, np.ndarray],
    as_fitted: Mapping[str, np.ndarray],
    member_weights: Mapping[str, float],
) -> np.ndarray | None:
    """What the year-end season did to a blend, day by day: the blend of ``members`` over the
    same blend of the members ``as_fitted``; None when it did nothing."""
    with_season = blend(members, member_weights)
    fitted = blend(as_fitted, member_weights)
    ratio = np.divide(with_season, fitted, out=np.ones_like(fitted), where=fitted > 0)
    return None if np.all(ratio == 1) else ratio


@dataclass(frozen=True)
class IntervalCalibration:
    """Percentiles of the shop's errors in units of each SKU's spread: the 10th and 90th for a
    band around the forecast, the 80th for a band whose lower bound is zero."""

    low: float
    high: float
    high_from_zero: float

    @staticmethod
    def pooled(per_sku: Sequence[PastErrors]) -> IntervalCalibration:
        units, from_zero = [], []
        for e in per_sku:
            s = spread(e)
            if s is None or s <= 0:
                continue
            units.append(e.standardised / s)
            from_zero.append((e.forecast, s))
        enough = 10 * MIN_SCORED_DAYS
        if not units or sum(u.size for u in units) < enough:
            return IntervalCalibration(*FALLBACK_QUANTILES)
        every = np.concatenate(units)
        low = float(np.quantile(every, INTERVAL[0]))
        floored = np.concatenate([_lower(f, s, low) <= 0 for f, s in from_zero])
        around, above_zero = every[~floored], every[floored]
        low, high = (
            (float(q) for q in np.quantile(around, INTERVAL))
            if around.size >= enough
            else (low, float(np.quantile(every, INTERVAL[1])))
        )
        high_from_zero = (
            float(np.quantile(above_zero, ONE_SIDED)) if above_zero.size >= enough else high
        )
        return IntervalCalibration(low, high, high_from_zero)


def _lower(
    mean: np.ndarray, sku_spread: float | None, low: float, season: np.ndarray | None = None
) -> np.ndarray:
    return mean + low * daily_sd(mean, sku_spread, season)


def with_interval(
    mean: np.ndarray,
    sku_spread: float | None,
    calibration: IntervalCalibration,
    closed: np.ndarray | None = None,
    season: np.ndarray | None = None,
) -> Forecast:
    """The published forecast: ``mean`` with its 80 % interval, zero on closed days. A SKU
    without a spread of its own yet gets a Poisson-like one (spread 1). The band never ends
    below the forecast: a SKU that sells on under a fifth of its days would otherwise get
    [0, 0] around a forecast above zero. ``season``: as in :func:`daily_sd`.

    The lower bound is a whole number of units, rounded down: units sell whole, so a bound of
    2.6 said "at least 3" and missed every day that sold 2. The 80 % interval score improved on
    29 of 32 data sets tried, real and synthetic (docs/forecasting-experiments.md). Which upper
    percentile a day gets is still decided by its unrounded bound: deciding by the rounded one
    (a bound of 0.4, published as 0, taking the 80th) brought coverage nearer 80 % but made the
    score worse than before on most sets.

    >>> calibration = IntervalCalibration(low=-1.0, high=1.0, high_from_zero=0.8)
    >>> band = with_interval(np.array([9.0, 0.3]), 1.0, calibration)
    >>> band.lower.tolist(), band.upper.round(2).tolist()
    ([5.0, 0.0], [12.04, 0.89])
    """
    mean = np.maximum(np.asarray(mean, dtype=float), 0)
    sd = daily_sd(mean, sku_spread, season)
    lower = _lower(mean, sku_spread, calibration.low, season)
    high = np.where(lower <= 0, calibration.high_from_zero, calibration.high)
    upper = np.maximum(mean + high * sd, mean)
    lower = np.floor(np.clip(lower, 0, mean) + WHOLE_UNIT_SLACK)
    if closed is not None:
        mean, lower, upper = (np.where(closed, 0.0, a) for a in (mean, lower, upper))
    return Forecast(mean, lower, upper)


class Blended(NamedTuple):
    forecast: Forecast
    weights: dict[str, float]
    season: np.ndarray | None  # what the year-end season multiplied each day by; None: nothing


class ShopBlend:
    """One night's blends for a shop's SKUs (by row): each SKU's weights from its validations
    (pooled over the SKUs with the same members, then per SKU), its spread, and the shop's
    interval calibration, all from the same days; ``launches``: the rows of SKUs launched
    lately, ``missing``: the members that cannot forecast a row (:func:`fit_weights`). The
    nightly run and ``forecast evaluate`` both publish through it, so what is measured is
    what is published."""

    def __init__(
        self,
        classes: Sequence[str],
        validations: Sequence[Sequence[Validation]],
        launches: Collection[int] = (),
        missing: Mapping[int, Collection[str]] | None = None,
        lifecycle_trust: Mapping[int, float] | None = None,
    ):
        self.weights = fit_weights(
            {i: (allowed_members(c), validations[i]) for i, c in enumerate(classes)},
            launches,
            missing,
            lifecycle_trust,
        )
        errors = [standardised_errors(v, self.weights[i]) for i, v in enumerate(validations)]
        self.spreads = [spread(e) for e in errors]
        # A launch without errors of its own is as uncertain as the shop's launches that have
        # them, not Poisson-like (a launch errs more): the launches' 80 % coverage rose on the
        # five of 15 shops that had such launches (seed 7: 70 -> 74 %) and fell on none
        # (docs/forecasting-experiments.md).
        known = [s for i, s in enumerate(self.spreads) if s is not None and i in launches]
        if known:
            typical = float(np.median(known))
            self.spreads = [
                typical if s is None and i in launches else s for i, s in enumerate(self.spreads)
            ]
        self.calibration = IntervalCalibration.pooled(errors)

    def forecast(
        self,
        row: int,
        members: Mapping[str, np.ndarray],
        closed: np.ndarray | None,
        as_fitted: Mapping[str, np.ndarray] | None = None,
    ) -> Blended:
        """The SKU's published forecast, the weights it was blended with and what the year-end
        season did to it, given the ``members`` as blended and, when the season scaled them,
        ``as_fitted``; raises ValueError when no member could forecast it."""
        weights = effective_weights(members, self.weights[row])
        mean = blend(members, weights)
        season = None if as_fitted is None else season_effect(members, as_fitted, weights)
        published = with_interval(mean, self.spreads[row], self.calibration, closed, season)
        return Blended(published, weights, season)
