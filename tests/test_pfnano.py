"""Tests of the PFNano reader (hepfm.data.formats.pfnano) on the shared real CMS file and on tiny PFNano-layout
files whose jets are known."""

from __future__ import annotations

import shutil
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot

from hepfm.core.errors import DataError, OptionError
from hepfm.data.formats import detect_format, read_jets
from hepfm.data.formats.pfnano import GENPART_CLASSES, HADRON_FLAVOUR_CLASSES, read, read_pfnano_scores
from hepfm.data.schema import PARTICLE_FEATURES

FLAGS = {name: PARTICLE_FEATURES.index(f"is_{name}") for name in ("charged_hadron", "neutral_hadron", "photon")}
FLAGS |= {name: PARTICLE_FEATURES.index(f"is_{name}") for name in ("electron", "muon")}
CHARGE = PARTICLE_FEATURES.index("charge")
LOG_PT = PARTICLE_FEATURES.index("log_pt")
# |pdgId| behind each hepfm flag
PDG = {"charged_hadron": 211, "neutral_hadron": 130, "photon": 22, "electron": 11, "muon": 13}


@pytest.fixture(scope="module")
def cms_file(shared_data) -> Path:
    return shared_data.parent / "pfnano" / "cms_pfnano_sample.root"


@pytest.fixture(scope="module")
def cms(cms_file):
    """The file's branches as uproot reads them, flattened to one row per FatJet (Jet) in file order, and
    per FatJet the pdgIds, charges and PUPPI weights of its linked candidates."""
    with uproot.open(cms_file) as file:
        a = file["Events"].arrays(filter_name=["FatJet_*", "Jet_*", "FatJetPFCands_*", "PFCands_*"])
    flat = {name: ak.to_numpy(ak.flatten(a[name])) for name in a.fields if name.startswith(("FatJet_", "Jet_"))}
    per_jet = {"pdgId": [], "charge": [], "links": []}
    for event in range(len(a)):
        jet_of_link = ak.to_numpy(a.FatJetPFCands_jetIdx[event])
        cands = ak.to_numpy(a.FatJetPFCands_pFCandsIdx[event])
        for j in range(len(a.FatJet_pt[event])):
            linked = cands[jet_of_link == j]
            per_jet["links"].append(len(linked))
            per_jet["pdgId"].append(ak.to_numpy(a.PFCands_pdgId[event])[linked])
            per_jet["charge"].append(ak.to_numpy(a.PFCands_charge[event])[linked])
    return flat | {"links": np.array(per_jet["links"]), "pdgId": per_jet["pdgId"], "charge": per_jet["charge"]}


@pytest.fixture(scope="module")
def fatjets(cms_file):
    return read_jets(cms_file)


def _raw(cms, collection: str, name: str) -> np.ndarray:
    """CMS's uncorrected jet pt or mass: the corrected value times (1 - rawFactor)."""
    return cms[f"{collection}_{name}"] * (1 - cms[f"{collection}_rawFactor"])


def test_detected_by_content_and_read_whole(cms_file, cms, fatjets, tmp_path, shared_data):
    assert detect_format(cms_file) == "pfnano"
    renamed = tmp_path / "events.dat"  # neither name nor suffix says PFNano
    shutil.copy(cms_file, renamed)
    assert detect_format(renamed) == "pfnano"
    # a NanoAOD file without PF candidates stays NanoAOD
    assert detect_format(shared_data.parent / "nanoaod" / "cms_opendata_2015_ttbar_nanoaod.root") == "nanoaod"
    assert len(fatjets) == 24 == len(cms["FatJet_pt"])
    assert fatjets.class_names == ["unlabelled"] and (fatjets.labels == 0).all()
    assert fatjets.has_pid and fatjets.particles.shape == (24, 128, len(PARTICLE_FEATURES))
    assert np.isfinite(fatjets.particles).all() and np.isfinite(fatjets.jets).all()
    assert (fatjets.particles[~fatjets.mask] == 0).all()


def test_constituents_are_the_linked_candidates(cms, fatjets, cms_file):
    # the file links 1 076 candidates to its 24 fat jets, 17 to 84 per jet
    assert cms["links"].sum() == 1076 and cms["links"].min() == 17 and cms["links"].max() == 84
    np.testing.assert_array_equal(fatjets.mask.sum(1), cms["links"])
    np.testing.assert_array_equal(fatjets.jet("n_particles"), cms["links"])
    short = read(cms_file, max_particles=32)
    np.testing.assert_array_equal(short.mask.sum(1), np.minimum(cms["links"], 32))
    np.testing.assert_array_equal(short.jet("n_particles"), cms["links"])  # the jet still sums them all
    np.testing.assert_allclose(short.jets, fatjets.jets, rtol=1e-6)
    np.testing.assert_array_equal(read(cms_file, max_jets=5).particles, fatjets.particles[:5])
    # the hardest first, as every reader sorts them
    log_pt = np.where(fatjets.mask, fatjets.particles[..., LOG_PT], -1e9)
    assert (np.diff(log_pt, axis=1)[fatjets.mask[:, 1:]] <= 0).all()


def test_charges_and_pid_flags_follow_pdgid(cms, fatjets):
    for i, (pdg, charge) in enumerate(zip(cms["pdgId"], cms["charge"], strict=True)):
        particles = fatjets.particles[i][fatjets.mask[i]]
        for name, code in PDG.items():
            assert particles[:, FLAGS[name]].sum() == (np.abs(pdg) == code).sum(), (i, name)
        assert particles[:, CHARGE].sum() == charge.sum()
    particles = fatjets.particles[fatjets.mask]
    flags = particles[:, list(FLAGS.values())]
    assert (flags.sum(1) == 1).all()  # this file's jets hold only the five kinds the flags name
    charged = particles[:, [FLAGS["charged_hadron"], FLAGS["electron"], FLAGS["muon"]]].sum(1) > 0
    assert (np.abs(particles[charged, CHARGE]) == 1).all() and (particles[~charged, CHARGE] == 0).all()
    # 307 + 293 charged hadrons, 142 neutral hadrons, 333 photons and one muon
    assert flags.sum(0).tolist() == [600, 142, 333, 0, 1]


def test_fatjet_is_the_puppi_weighted_sum_of_its_constituents(cms, fatjets, cms_file):
    raw_pt, raw_mass = _raw(cms, "FatJet", "pt"), _raw(cms, "FatJet", "mass")
    pt_dev = np.abs(fatjets.jet("pt") / raw_pt - 1)
    mass_dev = np.abs(fatjets.jet("mass") / raw_mass - 1)
    # measured: median 0.05%, at most 0.26% in pt; at most 0.24% in mass (the file's 16-bit floats)
    assert np.median(pt_dev) < 1e-3 and pt_dev.max() < 5e-3 and mass_dev.max() < 5e-3
    np.testing.assert_allclose(fatjets.jet("eta"), cms["FatJet_eta"], atol=5e-3)
    # unweighted, pileup candidates inflate the mass: by 0.03% to 19% here
    plain = read(cms_file, puppi=False)
    assert np.abs(plain.jet("mass") / raw_mass - 1).max() > 0.1
    assert (plain.jet("pt") > 0.99 * fatjets.jet("pt")).all()


def test_ak4_jet_is_the_unweighted_sum_of_its_constituents(cms, cms_file):
    jets = read(cms_file, collection="Jet")
    assert len(jets) == 64 == len(cms["Jet_pt"])
    np.testing.assert_array_equal(jets.jet("n_particles"), cms["Jet_nConstituents"])
    pt_dev = np.abs(jets.jet("pt") / _raw(cms, "Jet", "pt") - 1)
    assert np.median(pt_dev) < 1e-3 and pt_dev.max() < 5e-3  # measured: median 0.025%, at most 0.23%
    weighted = read(cms_file, collection="Jet", puppi=True)
    assert np.median(np.abs(weighted.jet("pt") / _raw(cms, "Jet", "pt") - 1)) > 0.05  # Run 2 AK4 jets are CHS


def test_selection_cuts_on_cms_pt_eta_and_soft_drop_mass(cms, cms_file):
    pt, eta, msd = cms["FatJet_pt"], cms["FatJet_eta"], cms["FatJet_msoftdrop"]
    raw = _raw(cms, "FatJet", "pt")
    for options, keep in [
        ({"pt_min": 1400.0}, pt > 1400),
        ({"eta_max": 0.5}, np.abs(eta) < 0.5),
        ({"msoftdrop_min": 20.0}, msd >= 20),
    ]:
        jets = read(cms_file, **options)
        assert 0 < len(jets) < 24 and len(jets) == keep.sum(), options
        np.testing.assert_allclose(jets.jet("pt"), raw[keep], rtol=5e-3)
    options = {"pt_min": 1000.0, "eta_max": 1.0, "msoftdrop_min": 10.0}
    keep = (pt > 1000) & (np.abs(eta) < 1) & (msd >= 10)
    jets = read_jets(cms_file, **options)  # read_jets hands the options to the reader
    assert len(jets) == keep.sum() == 13
    np.testing.assert_allclose(jets.jet("pt"), raw[keep], rtol=5e-3)
    scores = read_pfnano_scores(cms_file, ["FatJet_pt", "FatJet_msoftdrop"], max_jets=10, **options)
    np.testing.assert_array_equal(scores["FatJet_pt"], pt[keep][:10])
    np.testing.assert_array_equal(scores["FatJet_msoftdrop"], msd[keep][:10])
    assert (scores["FatJet_msoftdrop"] >= 10).all()


def test_particlenet_scores_belong_to_the_same_jets(cms, cms_file):
    scores = read_pfnano_scores(cms_file)
    assert "FatJet_particleNet_TvsQCD" in scores and "FatJet_particleNetMD_Xbb" in scores
    assert all(name.startswith("FatJet_particleNet") for name in scores)
    for name, values in scores.items():
        np.testing.assert_array_equal(values, cms[name])
    # QCD jets: CMS's ParticleNet calls every one of them QCD
    assert scores["FatJet_particleNet_TvsQCD"].max() < 0.5
    assert np.median(scores["FatJet_particleNet_QCD"]) > 0.5


def test_labels_by_hadron_flavour(cms, cms_file):
    jets = read_jets(cms_file, labels="hadronFlavour")
    assert jets.class_names == list(HADRON_FLAVOUR_CLASSES) == ["light", "charm", "bottom"]
    expected = np.searchsorted([0, 4, 5], cms["FatJet_hadronFlavour"])
    np.testing.assert_array_equal(jets.labels, expected)
    assert np.bincount(jets.labels, minlength=3).tolist() == [22, 2, 0]
    assert read(cms_file, labels="genpart").labels.tolist() == [0] * 24  # no top, W, Z or H in QCD events


@pytest.mark.slow
def test_many_files_and_the_dask_executor_keep_the_order(cms_file, fatjets, tmp_path):
    copy = tmp_path / "copy.root"
    shutil.copy(cms_file, copy)
    both = read([cms_file, copy], chunksize=4)
    assert len(both) == 48
    np.testing.assert_array_equal(both.particles[:24], fatjets.particles)
    np.testing.assert_array_equal(both.particles[24:], fatjets.particles)
    dask = read(cms_file, executor="dask", workers=1, chunksize=3)
    np.testing.assert_array_equal(dask.particles, fatjets.particles)
    np.testing.assert_array_equal(dask.jets, fatjets.jets)


# -- tiny PFNano-layout files ----------------------------------------------------------------------------------


def _pfnano(path: Path, drop: tuple[str, ...] = (), **override) -> Path:
    """One event: fat jet 0 at (eta, phi) = (0, 0) with a charged hadron and an HF hadron, fat jet 1 at (1, 2)
    with an HF electromagnetic candidate of PUPPI weight 0.5, fat jet 2 at (-1.5, -2) with a muon; a generator
    top (last copy) and its W near jet 0, a W near jet 1, a top that is not the last copy near jet 2."""
    collections = {
        "FatJet": {
            "pt": [500.0, 300.0, 200.0],
            "eta": [0.0, 1.0, -1.5],
            "phi": [0.0, 2.0, -2.0],
            "msoftdrop": [50.0, 10.0, 80.0],
            "hadronFlavour": [5, 0, 4],
        },
        "PFCands": {
            "pt": [100.0, 50.0, 20.0, 30.0],
            "eta": [0.1, 0.0, 1.0, -1.5],
            "phi": [0.0, 0.1, 2.0, -2.0],
            "mass": [0.13957, 0.0, 0.0, 0.10566],
            "charge": [1, 0, 0, -1],
            "pdgId": [211, 1, 2, 13],
            "puppiWeight": [1.0, 1.0, 0.5, 1.0],
        },
        "FatJetPFCands": {"jetIdx": [0, 0, 1, 2], "pFCandsIdx": [0, 1, 2, 3]},
        "GenPart": {
            "eta": [0.3, 0.1, 1.1, -1.5],
            "phi": [0.0, 0.1, 2.2, -2.0],
            "pdgId": [6, 24, -24, 6],
            "statusFlags": [1 << 13, 1 << 13, 1 << 13, 0],
        },
    }
    for key, values in override.items():
        collection, name = key.split("_", 1)
        collections[collection][name] = values
    data = {
        collection: ak.zip({k: ak.Array([v]) for k, v in fields.items() if f"{collection}_{k}" not in drop})
        for collection, fields in collections.items()
    }
    with uproot.recreate(path) as file:
        file.mktree("Events", {k: v.type.content for k, v in data.items()}).extend(data)
    return path


def test_forward_candidates_and_weights_in_a_known_file(tmp_path):
    path = _pfnano(tmp_path / "tiny.root")
    assert detect_format(path) == "pfnano"
    jets = read_jets(path)
    particles = [jets.particles[i][jets.mask[i]] for i in range(3)]
    # pdgId 1 (HF hadronic) is a neutral hadron, pdgId 2 (HF electromagnetic) a photon
    assert particles[0][:, [FLAGS["charged_hadron"], FLAGS["neutral_hadron"]]].tolist() == [[1, 0], [0, 1]]
    assert particles[1][:, [FLAGS["neutral_hadron"], FLAGS["photon"]]].tolist() == [[0, 1]]
    assert particles[2][:, [FLAGS["muon"], CHARGE]].tolist() == [[1, -1]]
    # a fat jet of one candidate of weight 0.5 is that candidate at half its pt
    assert jets.jet("pt")[1] == pytest.approx(10.0, rel=1e-6)
    assert read(path, puppi=False).jet("pt")[1] == pytest.approx(20.0, rel=1e-6)
    # CMS's corrected pt selects; a selection that keeps nothing gives an empty sample
    assert read(path, pt_min=250.0).jet("n_particles").tolist() == [2, 1]
    assert (
        len(read(path, pt_min=1e4)) == 0 and len(read_pfnano_scores(path, ["FatJet_pt"], pt_min=1e4)["FatJet_pt"]) == 0
    )


def test_labels_by_generator_matching(tmp_path):
    path = _pfnano(tmp_path / "tiny.root")
    jets = read(path, labels="genpart")
    assert jets.class_names == list(GENPART_CLASSES)
    # jet 0 holds a top (Delta R 0.3) and its W (0.14): the top wins; jet 1 a W at 0.22; jet 2 only an earlier
    # copy of a top. Within 0.2 only the W of jet 0 is left
    assert [jets.class_names[k] for k in jets.labels] == ["top", "W", "QCD"]
    assert [jets.class_names[k] for k in read(path, labels="genpart", match_radius=0.2).labels] == ["W", "QCD", "QCD"]
    assert read(path, labels="hadronFlavour").labels.tolist() == [2, 0, 1]


def test_missing_branches_are_named(tmp_path):
    path = _pfnano(tmp_path / "no_pdgid.root", drop=("PFCands_pdgId",))
    with pytest.raises(DataError, match=r"no_pdgid\.root.*PFCands_pdgId"):
        read_jets(path, format="pfnano")
    path = _pfnano(tmp_path / "no_genpart.root", drop=("GenPart_statusFlags",))
    read(path)  # generator branches are read only to label
    with pytest.raises(DataError, match=r"no_genpart\.root.*GenPart_statusFlags"):
        read(path, labels="genpart")
    path = _pfnano(tmp_path / "no_msd.root", drop=("FatJet_msoftdrop",))
    with pytest.raises(DataError, match=r"no_msd\.root.*FatJet_msoftdrop"):
        read(path, msoftdrop_min=10.0)
    with pytest.raises(DataError, match=r"no_msd\.root.*FatJet_particleNet_TvsQCD"):
        read_pfnano_scores(path, ["FatJet_particleNet_TvsQCD"])
    with pytest.raises(DataError, match=r"no_msd\.root.*particleNet"):
        read_pfnano_scores(path)
    with pytest.raises(DataError, match=r"'PFCands_pt' has other per-event lengths than 'FatJet_pt'"):
        read_pfnano_scores(path, ["PFCands_pt"])
    with pytest.raises(DataError, match=r"'nFatJet' holds one value per event"):
        read_pfnano_scores(path, ["nFatJet"])


def test_bad_links_files_and_options_are_named(tmp_path):
    path = _pfnano(tmp_path / "bad_index.root", FatJetPFCands_pFCandsIdx=[0, 1, 2, 7])
    with pytest.raises(DataError, match=r"bad_index\.root.*FatJetPFCands_pFCandsIdx"):
        read(path)
    path = _pfnano(tmp_path / "bad_flavour.root", FatJet_hadronFlavour=[5, 0, 21])
    with pytest.raises(DataError, match=r"bad_flavour\.root.*FatJet_hadronFlavour"):
        read(path, labels="hadronFlavour")
    broken = tmp_path / "broken.root"
    broken.write_bytes(b"root" + b"\0" * 100)
    with pytest.raises(DataError, match="broken.root"):
        read(broken)
    good = _pfnano(tmp_path / "good.root")
    with pytest.raises(OptionError, match="labels"):
        read(good, labels="partonFlavour")
    with pytest.raises(OptionError, match="executor"):
        read(good, executor="spark")
    with pytest.raises(OptionError, match="match_radius"):
        read(good, labels="genpart", match_radius=0.0)
