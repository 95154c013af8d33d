"""The PET model: shapes, symmetries, padding, gradients, checkpoints."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import synthetic_jets

from hepfm.core.errors import CheckpointError
from hepfm.data import FeatureNormaliser, JetDataset
from hepfm.models import PET, PETConfig
from hepfm.train.checkpoint import load_checkpoint, save_checkpoint

# what a jet checkpoint's config.json must hold besides the model: class names and the feature normalisation
NORMALISER = FeatureNormaliser.fit(synthetic_jets()).to_dict()
META = {"class_names": ["a", "b"], "normaliser": NORMALISER}


@pytest.fixture
def batch(toy_jets):
    ds = JetDataset(toy_jets)
    return ds.collate([ds[i] for i in range(6)])


@pytest.fixture
def model():
    torch.manual_seed(0)
    return PET(PETConfig.named("tiny", n_classes=2)).eval()


def test_named_sizes():
    assert 0.1e6 < PET(PETConfig.named("tiny")).num_parameters() < 0.5e6
    assert 1.5e6 < PET(PETConfig.named("small")).num_parameters() < 2.5e6
    with pytest.raises(ValueError, match="unknown PET size 'huge'"):
        PETConfig.named("huge")


def test_output_shapes(model, batch):
    x, mask, jet = batch.x, batch.mask, batch.jet
    assert model(x, mask).shape == (6, 2)
    h, temb = model.body(x, mask, torch.rand(6))
    assert h.shape == (6, x.shape[1], 64) and temb.shape == (6, 64)
    logits, jet_pred = model.classify(h, mask, jet, temb)
    assert logits.shape == (6, 2) and jet_pred.shape == jet.shape
    v = model.velocity(h, mask, jet, temb, torch.tensor([0, 1, 2, 0, 1, 2]))
    assert v.shape == x.shape and torch.all(v[~mask] == 0)


def test_permutation_invariance(model, batch):
    x, mask, jet = batch.x, batch.mask, batch.jet
    perm = torch.randperm(x.shape[1])
    out = model(x, mask, jet)
    torch.testing.assert_close(model(x[:, perm], mask[:, perm], jet), out, atol=1e-5, rtol=1e-5)


def _trained_like():
    """A PET whose residual branches and FiLM layers act at full strength, as after training, so that a
    leak of padding would not be damped by the small initial LayerScale or the identity FiLM."""
    torch.manual_seed(1)
    model = PET(PETConfig.named("tiny", n_classes=2, layer_scale_init=1.0))
    for name, p in model.named_parameters():
        if ".proj." in name or "film" in name:
            torch.nn.init.normal_(p, std=0.2)
    return model.eval()


@pytest.mark.parametrize("trained_like", [False, True])
def test_padding_invariance(model, batch, trained_like):
    model = _trained_like() if trained_like else model
    x, mask, jet = batch.x, batch.mask, batch.jet
    t, label = torch.rand(6), torch.tensor([0, 1, 0, 1, 2, 2])
    h, temb = model.body(x, mask, t)
    out, v = model(x, mask), model.velocity(h, mask, jet, temb, label)
    n = x.shape[1]
    padded_x = torch.cat([x, torch.zeros(6, 25, x.shape[2])], 1)
    padded_mask = torch.cat([mask, torch.zeros(6, 25, dtype=torch.bool)], 1)
    torch.testing.assert_close(model(padded_x, padded_mask), out, atol=1e-5, rtol=1e-5)
    # garbage in padded slots changes nothing either, for the classifier or the generator
    noisy = padded_x.clone()
    noisy[~padded_mask] = 7.0
    torch.testing.assert_close(model(noisy, padded_mask), out, atol=1e-5, rtol=1e-5)
    h, temb = model.body(noisy, padded_mask, t)
    v_padded = model.velocity(h, padded_mask, jet, temb, label)
    torch.testing.assert_close(v_padded[:, :n], v, atol=1e-5, rtol=1e-5)
    assert torch.all(v_padded[:, n:] == 0)


def test_jets_with_fewer_particles_than_neighbours(model):
    x = torch.randn(2, 5, 13)
    mask = torch.tensor([[1, 0, 0, 0, 0], [1, 1, 1, 0, 0]], dtype=torch.bool)
    assert torch.isfinite(model(x, mask)).all()


def test_gradients_reach_every_parameter(batch):
    from hepfm.train.objectives import PretrainObjective

    torch.manual_seed(1)
    model = PET(PETConfig.named("tiny", n_classes=2, layer_scale_init=0.1)).train()
    objective = PretrainObjective(model)
    # FiLM layers start as the identity (zero weights), so what feeds them gets gradients from step 2 on
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    for _ in range(2):
        optimizer.zero_grad()
        loss, _ = objective(batch)
        loss.backward()
        optimizer.step()
    missing = [n for n, p in model.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert not missing


def test_pid_dropout_only_in_training(batch):
    x, mask = batch.x, batch.mask
    model = PET(PETConfig.named("tiny", pid_dropout=1.0))
    model.train()
    dropped = model.drop_pid(x)
    assert torch.all(dropped[..., 7:] == 0) and torch.equal(dropped[..., :7], x[..., :7])
    model.eval()
    assert torch.equal(model.drop_pid(x), x)
    # in training, the clean (classification) pass loses PID; the noised (diffusion) pass keeps it, since
    # the velocity target is built from the PID features
    t = torch.rand(x.shape[0])
    h_eval, _ = model.body(x, mask, t)
    h_drop, _ = model.body(dropped, mask)
    model.train()
    torch.testing.assert_close(model.body(x, mask, t)[0], h_eval)
    torch.testing.assert_close(model.body(x, mask)[0], h_drop)
    model.eval()
    assert not torch.allclose(model.body(x, mask)[0], h_drop)


def test_pid_dropout_with_fewer_features_is_a_no_op():
    # regression: a 4-feature model used to index the PID columns 7-12 and crash in training
    model = PET(PETConfig.named("tiny", n_features=4, pid_dropout=1.0)).train()
    x = torch.randn(3, 10, 4)
    assert torch.equal(model.drop_pid(x), x)
    model(x, torch.ones(3, 10, dtype=torch.bool)).sum().backward()


def test_checkpoint_round_trip(tmp_path, model, batch):
    x, mask = batch.x, batch.mask
    save_checkpoint(tmp_path / "ckpt", model, {"class_names": ["a", "b"], "normaliser": NORMALISER})
    ckpt = load_checkpoint(tmp_path / "ckpt")
    loaded = ckpt.model()
    assert ckpt.class_names == ["a", "b"] and ckpt.config["class_names"] == ["a", "b"]
    torch.testing.assert_close(loaded(x, mask), model(x, mask))
    # dropping the generative head keeps the classifier identical
    light = ckpt.model(generative=False)
    torch.testing.assert_close(light(x, mask), model(x, mask))


def test_bad_checkpoints_are_clear_errors(tmp_path, model):
    ckpt = save_checkpoint(tmp_path / "ckpt", model, META)
    with pytest.raises(CheckpointError, match="checkpoint directory not found"):
        load_checkpoint(tmp_path / "nope")
    # a corrupt weights file
    (ckpt / "model.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError, match="model.safetensors.*corrupt"):
        load_checkpoint(ckpt)
    # a config that does not match the weights
    save_checkpoint(ckpt, model, META)
    cfg = json.loads((ckpt / "config.json").read_text())
    cfg["model_config"]["dim"] = 32
    (ckpt / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="shape"):
        load_checkpoint(ckpt)
    cfg["model_config"]["dim"] = 64
    cfg["model_config"]["n_blocks"] = 6
    (ckpt / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="missing tensor"):
        load_checkpoint(ckpt)
    # fewer blocks than the weights hold: an error, also when a head is dropped at load time
    cfg["model_config"]["n_blocks"] = 2
    (ckpt / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="unexpected tensor.*blocks"):
        load_checkpoint(ckpt)
    with pytest.raises(CheckpointError, match="unexpected tensor.*blocks"):
        load_checkpoint(ckpt).model(generative=False)
    cfg["model_config"]["n_blocks"] = 4
    cfg["model_config"]["colour"] = "red"
    (ckpt / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="model_config"):
        load_checkpoint(ckpt)
    (ckpt / "config.json").write_text(json.dumps({"format": 1, "model": "pet"}))
    with pytest.raises(CheckpointError, match="'model_config' missing"):
        load_checkpoint(ckpt)
    (ckpt / "config.json").write_text("[1, 2]")
    with pytest.raises(CheckpointError, match="not a JSON object"):
        load_checkpoint(ckpt)
    (ckpt / "config.json").unlink()
    with pytest.raises(CheckpointError, match="config.json: missing"):
        load_checkpoint(ckpt)


def test_checkpoint_is_not_pickle(tmp_path, model):
    ckpt = save_checkpoint(tmp_path / "ckpt", model, META)
    head = (ckpt / "model.safetensors").read_bytes()[:8]
    assert int.from_bytes(head, "little") < 1_000_000  # safetensors header length, not a pickle opcode
    assert not (ckpt / "model.safetensors").read_bytes().startswith(b"\x80")


class _Payload:
    def __reduce__(self):
        return (print, ("pickled code ran",))


def test_pickled_weights_are_refused_unexecuted(tmp_path, model, capsys):
    ckpt = save_checkpoint(tmp_path / "ckpt", model, META)
    torch.save({"blocks.0.weight": _Payload()}, ckpt / "model.safetensors")
    with pytest.raises(CheckpointError, match="model.safetensors.*corrupt or not a safetensors file"):
        load_checkpoint(ckpt)
    assert "pickled code ran" not in capsys.readouterr().out


def test_representation_layers_are_the_named_submodules_in_forward_order(model):
    layers = model.representation_layers()
    c = model.config
    assert list(layers) == [
        "embed",
        *[f"local.{i}" for i in range(c.n_local)],
        *[f"blocks.{i}" for i in range(c.n_blocks)],
        *[f"class_blocks.{i}" for i in range(c.n_class_blocks)],
    ]
    assert len(layers) == 1 + 2 + 4 + 1  # tiny: two edge blocks, four transformer blocks, one class block
    assert all(model.get_submodule(name) is module for name, module in layers.items())


def test_pool_representation_averages_real_particles_and_keeps_the_class_token(model, batch):
    d = model.config.dim
    per_particle = torch.randn(*batch.mask.shape, d)
    pooled = model.pool_representation("blocks.1", per_particle, batch)
    assert pooled.shape == (len(batch), d) and pooled.dtype == torch.float64
    j = 2
    real = batch.mask[j]
    torch.testing.assert_close(pooled[j], per_particle[j][real].double().mean(0))
    # padding never enters: changing padded slots leaves the pooled vector as it is
    noisy = per_particle.masked_fill(~batch.mask.unsqueeze(-1), 1e3)
    torch.testing.assert_close(model.pool_representation("embed", noisy, batch), pooled)
    token = torch.randn(len(batch), 1, d)
    torch.testing.assert_close(model.pool_representation("class_blocks.0", token, batch), token[:, 0].double())
