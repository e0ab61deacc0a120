"""Generator truth: heavy-flavour hadrons, jet flavour labels and the pruned GenPart list.

Definitions (DESIGN.md, "Physics conventions"):

* A *B hadron* is a hadron whose PDG code holds a b quark; a *C hadron* one that
  holds a c quark and no b quark. Only the *weakly decaying* ones count: those
  with no daughter of the same kind (the last copy before the weak decay).
  C hadrons produced in B-hadron decays are not counted, as in CMS's
  hadron-flavour definition.
* A fat jet's ``nBHadrons`` / ``nCHadrons`` count those hadrons within
  dR < ``radius`` of the jet axis, each hadron given to its nearest jet only
  (the ghost-association picture). ``hadronFlavour`` is 5 with any B hadron,
  else 4 with any C hadron, else 0.
* Categories: bb (>= 2 B), b (1 B), cc (0 B, >= 2 C), c (0 B, 1 C), light.
* ``GenPart`` is NanoAOD's pruned list (:func:`gen_particles`);
  :func:`gen_particles_matched` also maps particles (such as the source of each
  reconstructed muon) to their index in it (``Muon_genPartIdx``), -1 if pruned.

Everything runs on the flat particle table (see ``jettag.pythia``) with numba
kernels over the whole chunk; no per-event Python loop.
"""

from __future__ import annotations

import awkward as ak
import numba
import numpy as np

from jettag.generator import columnar

__all__ = [
    "gen_particles",
    "gen_particles_matched",
    "heavy_hadron_flags",
    "label_jets",
]


# statusFlags bits as in CMS NanoAOD GenPart
_IS_PROMPT = 1 << 0
_IS_DIRECT_HADRON_DECAY_PRODUCT = 1 << 6
_IS_HARD_PROCESS = 1 << 7
_FROM_HARD_PROCESS = 1 << 8
_IS_FIRST_COPY = 1 << 12
_IS_LAST_COPY = 1 << 13


@numba.njit(cache=True)
def _quark_content(abs_id: int) -> tuple[int, int, int, bool]:
    """The three quark digits of a hadron code and whether it is a hadron."""
    nq3 = (abs_id // 10) % 10
    nq2 = (abs_id // 100) % 10
    nq1 = (abs_id // 1000) % 10
    is_hadron = abs_id > 100 and nq3 != 0 and nq2 != 0
    return nq1, nq2, nq3, is_hadron


@numba.njit(cache=True)
def _heavy_flags_kernel(pdg, status, mother1, offsets, out_b, out_c):
    """Flag weakly decaying B hadrons and C hadrons not from B decays."""
    n = len(pdg)
    is_b = np.zeros(n, np.bool_)
    is_c = np.zeros(n, np.bool_)
    for i in range(n):
        a = abs(pdg[i])
        s = abs(status[i])
        if not (s == 1 or 81 <= s <= 99 or status[i] > 0):
            continue
        nq1, nq2, nq3, hadron = _quark_content(a)
        if not hadron:
            continue
        if nq1 == 5 or nq2 == 5 or nq3 == 5:
            is_b[i] = True
        elif nq1 == 4 or nq2 == 4 or nq3 == 4:
            is_c[i] = True
    for ev in range(len(offsets) - 1):
        start = offsets[ev]
        stop = offsets[ev + 1]
        has_b_child = np.zeros(stop - start, np.bool_)
        has_c_child = np.zeros(stop - start, np.bool_)
        for i in range(start, stop):
            m = mother1[i]
            if m <= 0 or m >= stop - start:
                continue
            if is_b[i]:
                has_b_child[m] = True
            if is_c[i]:
                has_c_child[m] = True
        for i in range(start, stop):
            local = i - start
            if is_b[i] and not has_b_child[local]:
                out_b[i] = True
            if is_c[i] and not has_c_child[local]:
                # walk up the ancestry: a C hadron from a B decay does not count
                m = mother1[i]
                child = local
                from_b = False
                while 0 < m < child:
                    if is_b[start + m]:
                        from_b = True
                        break
                    child = m
                    m = mother1[start + m]
                out_c[i] = not from_b



def heavy_hadron_flags(particles: ak.Array) -> tuple[ak.Array, ak.Array]:
    """Per particle: is it a weakly decaying B hadron; a C hadron not from a B decay."""
    counts = columnar.counts(particles)
    offsets = columnar.offsets(counts)
    pdg = columnar.flat(particles["pdgId"], np.int64)
    status = columnar.flat(particles["status"], np.int64)
    mother1 = columnar.flat(particles["mother1"], np.int64)
    out_b = np.zeros(len(pdg), np.bool_)
    out_c = np.zeros(len(pdg), np.bool_)
    _heavy_flags_kernel(pdg, status, mother1, offsets, out_b, out_c)
    return ak.unflatten(out_b, counts), ak.unflatten(out_c, counts)


@numba.njit(cache=True)
def _count_nearest(jet_eta, jet_phi, jet_offsets, h_eta, h_phi, h_offsets, radius, out):
    """For each hadron, add one to the nearest jet within ``radius``."""
    r2 = radius * radius
    for ev in range(len(jet_offsets) - 1):
        j0 = jet_offsets[ev]
        j1 = jet_offsets[ev + 1]
        if j1 == j0:
            continue
        for h in range(h_offsets[ev], h_offsets[ev + 1]):
            best = -1
            best_dr2 = r2
            for j in range(j0, j1):
                dphi = h_phi[h] - jet_phi[j]
                while dphi > np.pi:
                    dphi -= 2 * np.pi
                while dphi < -np.pi:
                    dphi += 2 * np.pi
                deta = h_eta[h] - jet_eta[j]
                dr2 = deta * deta + dphi * dphi
                if dr2 < best_dr2:
                    best_dr2 = dr2
                    best = j
            if best >= 0:
                out[best] += 1


def _eta_phi(px: np.ndarray, py: np.ndarray, pz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pt = np.hypot(px, py)
    with np.errstate(divide="ignore", invalid="ignore"):
        eta = np.arcsinh(np.where(pt > 0, pz / np.where(pt > 0, pt, 1.0), np.sign(pz) * 1e4))
    return eta, np.arctan2(py, px)


def _hadron_directions(particles: ak.Array, mask: ak.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    sel = particles[mask]
    offsets = columnar.offsets(columnar.counts(sel))
    eta, phi = _eta_phi(columnar.flat(sel["px"], np.float64), columnar.flat(sel["py"], np.float64), columnar.flat(sel["pz"], np.float64))
    return eta, phi, offsets


def label_jets(
    jets: ak.Array,
    particles: ak.Array,
    radius: float = 0.8,
    flags: tuple[ak.Array, ak.Array] | None = None,
) -> ak.Array:
    """Hadron-flavour labels of ``jets`` (fields eta, phi) from the particle table.

    ``flags`` are ``heavy_hadron_flags(particles)`` when already computed.
    Returns per jet: ``hadronFlavour`` (int32), ``nBHadrons`` and ``nCHadrons`` (uint8).
    """
    is_b, is_c = heavy_hadron_flags(particles) if flags is None else flags
    jet_counts = columnar.counts(jets)
    jet_offsets = columnar.offsets(jet_counts)
    jet_eta = np.asarray(ak.to_numpy(ak.flatten(jets["eta"])), np.float64)
    jet_phi = np.asarray(ak.to_numpy(ak.flatten(jets["phi"])), np.float64)
    n_b = np.zeros(len(jet_eta), np.int64)
    n_c = np.zeros(len(jet_eta), np.int64)
    for flags, out in ((is_b, n_b), (is_c, n_c)):
        h_eta, h_phi, h_offsets = _hadron_directions(particles, flags)
        _count_nearest(jet_eta, jet_phi, jet_offsets, h_eta, h_phi, h_offsets, radius, out)
    flavour = np.where(n_b > 0, 5, np.where(n_c > 0, 4, 0)).astype(np.int32)
    return ak.unflatten(
        ak.zip(
            {
                "hadronFlavour": flavour,
                "nBHadrons": np.minimum(n_b, 255).astype(np.uint8),
                "nCHadrons": np.minimum(n_c, 255).astype(np.uint8),
            }
        ),
        jet_counts,
    )


@numba.njit(cache=True)
def _prune_kernel(pdg, status, mother1, px, py, offsets, is_b, is_c, lepton_pt_min, keep, flags):
    """Choose the GenPart entries and their status flags, event by event."""
    for ev in range(len(offsets) - 1):
        start = offsets[ev]
        stop = offsets[ev + 1]
        for i in range(start, stop):
            a = abs(pdg[i])
            s = abs(status[i])
            f = 0
            if 22 <= s <= 23:
                keep[i] = True
                f |= _IS_HARD_PROCESS | _FROM_HARD_PROCESS | _IS_FIRST_COPY
            elif is_b[i] or is_c[i]:
                keep[i] = True
                f |= _IS_LAST_COPY
            elif a == 11 or a == 13 or a == 15:
                if status[i] > 0 or a == 15:
                    pt = np.hypot(px[i], py[i])
                    if pt > lepton_pt_min:
                        keep[i] = True
                        f |= _IS_LAST_COPY
            elif (a == 23 or a == 25) and s == 62:
                # last copy of the resonance, after recoil, before its decay
                keep[i] = True
                f |= _IS_LAST_COPY | _FROM_HARD_PROCESS
            if keep[i]:
                # prompt: no hadron among the ancestors
                m = mother1[i]
                child = i - start
                prompt = True
                direct_hadron = False
                first = True
                while 0 < m < child:
                    am = abs(pdg[start + m])
                    if am > 100 and (am // 10) % 10 != 0 and (am // 100) % 10 != 0:
                        prompt = False
                        if first:
                            direct_hadron = True
                        break
                    first = False
                    child = m
                    m = mother1[start + m]
                if prompt:
                    f |= _IS_PROMPT
                if direct_hadron:
                    f |= _IS_DIRECT_HADRON_DECAY_PRODUCT
                flags[i] = f


@numba.njit(cache=True)
def _mother_kernel(mother1, offsets, keep, kept_position, new_index, out_mother):
    """Index of the nearest kept ancestor, in the pruned list (-1 if none).

    The walk follows ``mother1`` towards lower record indices only: in Pythia's
    record the incoming partons point forward into the initial-state shower,
    which is not an ancestry to follow.
    """
    for ev in range(len(offsets) - 1):
        start = offsets[ev]
        stop = offsets[ev + 1]
        for i in range(start, stop):
            if not keep[i]:
                continue
            child = i - start
            m = mother1[i]
            found = -1
            while 0 < m < child:
                if keep[start + m]:
                    found = new_index[start + m]
                    break
                child = m
                m = mother1[start + m]
            out_mother[kept_position[i]] = found


def gen_particles(
    particles: ak.Array,
    lepton_pt_min: float = 3.0,
    flags: tuple[ak.Array, ak.Array] | None = None,
) -> ak.Array:
    """The pruned ``GenPart`` collection of NanoAOD, per event.

    Kept: the hard process (Pythia status 22-23), the resonance's last copy,
    weakly decaying B and C hadrons, and charged leptons above ``lepton_pt_min``
    (taus at any pT). ``genPartIdxMother`` points to the nearest kept ancestor.
    ``status`` follows NanoAOD: 1 final, 2 decayed, Pythia's code for partons.
    ``statusFlags`` fills bits 0 (isPrompt), 6 (isDirectHadronDecayProduct),
    7 (isHardProcess), 8 (fromHardProcess), 12 (isFirstCopy), 13 (isLastCopy).
    ``flags`` are ``heavy_hadron_flags(particles)`` when already computed.
    """
    return gen_particles_matched(particles, None, lepton_pt_min, flags)[0]


def gen_particles_matched(
    particles: ak.Array,
    matches: ak.Array | None,
    lepton_pt_min: float = 3.0,
    flags: tuple[ak.Array, ak.Array] | None = None,
) -> tuple[ak.Array, ak.Array | None]:
    """:func:`gen_particles`, and the ``GenPart`` index of each particle in ``matches``.

    ``matches`` holds, per event, indices into that event's particle table (such
    as ``Muon.genIdx``); each becomes the index of that particle in the pruned
    ``GenPart`` list, or -1 if it was not kept (int32, same jagged structure).
    """
    is_b, is_c = heavy_hadron_flags(particles) if flags is None else flags
    counts = columnar.counts(particles)
    offsets = columnar.offsets(counts)
    pdg = columnar.flat(particles["pdgId"], np.int64)
    status = columnar.flat(particles["status"], np.int64)
    mother1 = columnar.flat(particles["mother1"], np.int64)
    px = columnar.flat(particles["px"], np.float64)
    py = columnar.flat(particles["py"], np.float64)
    pz = columnar.flat(particles["pz"], np.float64)
    mass = columnar.flat(particles["mass"], np.float64)
    keep = np.zeros(len(pdg), np.bool_)
    flags = np.zeros(len(pdg), np.int64)
    _prune_kernel(
        pdg,
        status,
        mother1,
        px,
        py,
        offsets,
        np.asarray(ak.to_numpy(ak.flatten(is_b)), np.bool_),
        np.asarray(ak.to_numpy(ak.flatten(is_c)), np.bool_),
        lepton_pt_min,
        keep,
        flags,
    )
    event_of = np.repeat(np.arange(len(counts)), counts)
    kept_counts = np.bincount(event_of[keep], minlength=len(counts)).astype(np.int64)
    kept_offsets = columnar.offsets(kept_counts)
    # position of each kept particle inside its event's pruned list
    global_rank = np.cumsum(keep) - 1
    new_index = np.where(keep, global_rank - kept_offsets[event_of], -1)
    mothers = np.full(int(keep.sum()), -1, np.int64)
    _mother_kernel(mother1, offsets, keep, global_rank, new_index, mothers)
    eta, phi = _eta_phi(px[keep], py[keep], pz[keep])
    st = status[keep]
    nano_status = np.where(st > 0, 1, np.where(np.abs(st) >= 81, 2, np.abs(st)))
    gen = ak.zip(
        {
            "pt": np.hypot(px[keep], py[keep]).astype(np.float32),
            "eta": eta.astype(np.float32),
            "phi": phi.astype(np.float32),
            "mass": mass[keep].astype(np.float32),
            "pdgId": pdg[keep].astype(np.int32),
            "status": nano_status.astype(np.int32),
            "statusFlags": flags[keep].astype(np.int32),
            "genPartIdxMother": mothers.astype(np.int32),
        }
    )
    gen = ak.unflatten(gen, kept_counts)
    if matches is None:
        return gen, None
    match_counts = columnar.counts(matches)
    match_event = np.repeat(np.arange(len(match_counts)), match_counts)
    local = columnar.flat(matches, np.int64)
    matched = new_index[offsets[match_event] + local] if len(local) else np.zeros(0, np.int64)
    matched = np.where(local >= 0, matched, -1).astype(np.int32)
    return gen, ak.unflatten(matched, match_counts)
