"""``SplitterTable`` on small torch modules: the order entries are tried in, user registrations,
refusals with their reason, the unknown-type message, the fallback table, and lookups that
import nothing."""
from __future__ import annotations

import importlib
import sys
import textwrap

import pytest
from torch import nn

pytest.importorskip("mmengine", reason="the OpenMMLab layer needs mmengine and mmcv")

from hybridkt_ext.core import UnsupportedBackboneError  # noqa: E402
from hybridkt_ext.for_openmmlab.splitter_table import (Fallback, SplitterEntry,  # noqa: E402
                                                       SplitterTable)

HERE = __name__  # the module defining the classes below: imported, so its entries resolve


class Chain(nn.Module):
    pass


class DeepChain(Chain):
    pass


class WideChain(Chain):
    pass


class Branchy(nn.Module):
    pass


class BranchyChain(Chain):
    """A chain's subclass that is not one (as DetectoRS_ResNet is a ResNet)."""


def tag(name: str):
    """A splitter returning ``name`` in place of the staged backbone, so a test sees which ran."""
    return lambda model: (name, (type(model).__name__,))


def table(*entries: SplitterEntry, fallback: Fallback | None = None) -> SplitterTable:
    return SplitterTable(
        "mmfake", entries, {"Branchy": "it runs two branches side by side",
                            "BranchyChain": "its chain is run twice"},
        register_with="hybridkt_ext.for_mmfake.register_stage_splitter",
        subclasses=("WideChain",), fallback=fallback)


def test_entries_are_tried_in_order_and_match_subclasses():
    splitters = table(SplitterEntry(HERE, "DeepChain", tag("deep")),
                      SplitterEntry(HERE, "Chain", tag("chain")))
    assert splitters.stages(DeepChain()) == ("deep", ("DeepChain",))
    assert splitters.stages(WideChain())[0] == "chain"  # a subclass, no entry of its own
    assert splitters.stages(Chain())[0] == "chain"
    # The base's entry first shadows the subclass's: order is the rule, not specificity.
    assert table(SplitterEntry(HERE, "Chain", tag("chain")),
                 SplitterEntry(HERE, "DeepChain", tag("deep"))).stages(DeepChain())[0] == "chain"


def test_user_registrations_come_first_newest_first():
    splitters = table(SplitterEntry(HERE, "DeepChain", tag("deep")))
    decorated = splitters.register(Chain)(tag("user chain"))
    assert splitters.stages(DeepChain())[0] == "user chain"  # refines the built-in entry
    splitters.register(DeepChain)(tag("user deep"))
    assert splitters.stages(DeepChain())[0] == "user deep"
    assert splitters.stages(WideChain())[0] == "user chain"
    assert decorated(Chain())[0] == "user chain"  # the decorator returns the function itself
    assert splitters.supported_types() == ["DeepChain", "WideChain", "Chain"]  # once each


def test_registering_something_else_than_a_class_says_how():
    splitters = table()
    with pytest.raises(TypeError, match=r"register_stage_splitter takes the backbone class, as "
                                        r"in @hybridkt_ext.for_mmfake.register_stage_splitter"):
        splitters.register(Chain())
    with pytest.raises(TypeError, match=r"register_stage_splitter\(Chain\) decorates a function"):
        splitters.register(Chain)("split_chain")


def test_a_refused_type_fails_with_its_reason_and_the_types_that_work():
    splitters = table(SplitterEntry(HERE, "Chain", tag("chain")))
    with pytest.raises(UnsupportedBackboneError) as err:
        splitters.stages(Branchy())
    message = str(err.value)
    assert message.startswith("Branchy cannot take part in hybrid forward: it runs two branches "
                              "side by side, so it is not one chain of stages")
    assert message.endswith("Use a chain-structured backbone as student or teacher: Chain, "
                            "WideChain.")
    assert "\n" not in message
    for kind in ("Branchy", "mmfake.Branchy", Branchy):  # before build: name, scoped or class
        with pytest.raises(UnsupportedBackboneError, match=r"^Branchy cannot take part"):
            splitters.refuse_if_not_a_chain(kind)
    splitters.refuse_if_not_a_chain("Chain")  # a type that works passes


def test_a_refused_subclass_of_a_supported_type_is_refused_before_its_entry_matches():
    splitters = table(SplitterEntry(HERE, "Chain", tag("chain")))
    with pytest.raises(UnsupportedBackboneError, match=r"^BranchyChain cannot take part in "
                                                       r"hybrid forward: its chain is run twice"):
        splitters.stages(BranchyChain())


def test_a_user_registration_lifts_the_refusal_of_its_class():
    splitters = table()
    splitters.register(Branchy)(tag("user"))
    splitters.refuse_if_not_a_chain("Branchy")
    splitters.refuse_if_not_a_chain(Branchy)
    assert splitters.stages(Branchy())[0] == "user"


def test_an_unknown_type_lists_the_types_that_work_and_how_to_register():
    splitters = table(SplitterEntry(HERE, "Chain", tag("chain")),
                      SplitterEntry("mmother.models", "Net", tag("net"), scope="mmother"))
    with pytest.raises(UnsupportedBackboneError) as err:
        splitters.stages(nn.Conv2d(3, 8, 3))
    assert str(err.value) == (
        "no stage splitter for torch.nn.modules.conv.Conv2d. mmfake backbones that work: Chain, "
        "mmother.Net, WideChain. For another chain-structured backbone, declare its stages with "
        "hybridkt_ext.core.cut_into_stages and register the function with "
        "hybridkt_ext.for_mmfake.register_stage_splitter(BackboneClass).")


@pytest.fixture
def fake_packages(tmp_path, monkeypatch):
    """``hkt_fb`` (a library with a chain and a refused backbone), ``hkt_fb_table`` (its
    framework's table, importing the library as an adapter does) and ``hkt_probe`` (one more
    backbone module), importable but not imported; removed from ``sys.modules`` afterwards."""
    (tmp_path / "hkt_fb").mkdir()
    (tmp_path / "hkt_fb" / "__init__.py").write_text("")
    (tmp_path / "hkt_fb" / "backbones.py").write_text(textwrap.dedent("""
        from torch import nn
        class FbChain(nn.Module): pass
        class FbBranchy(nn.Module): pass
    """))
    (tmp_path / "hkt_fb_table.py").write_text(textwrap.dedent("""
        import hkt_fb.backbones
        from hybridkt_ext.for_openmmlab.splitter_table import SplitterEntry, SplitterTable
        TABLE = SplitterTable(
            "fb", [SplitterEntry("hkt_fb.backbones", "FbChain", lambda m: ("fallback", ()))],
            {"FbBranchy": "it runs three branches"}, register_with="fb.register")
    """))
    (tmp_path / "hkt_probe.py").write_text("from torch import nn\nclass Probe(nn.Module): pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    yield
    for name in [m for m in sys.modules if m.split(".")[0] in ("hkt_fb", "hkt_fb_table",
                                                                "hkt_probe")]:
        del sys.modules[name]


def test_an_entry_of_a_module_not_imported_matches_nothing_and_imports_nothing(fake_packages):
    splitters = table(SplitterEntry("hkt_probe", "Probe", tag("probe")))
    with pytest.raises(UnsupportedBackboneError, match="no stage splitter"):
        splitters.stages(Chain())
    assert "hkt_probe" not in sys.modules
    from hkt_probe import Probe  # a user building the model imports its module

    assert splitters.stages(Probe())[0] == "probe"


FB = Fallback("hkt_fb", "hkt_fb_table:TABLE", listed_by="hkt_fb_adapter.supported_types()")


def test_the_fallback_is_not_imported_for_a_model_of_another_package(fake_packages):
    with pytest.raises(UnsupportedBackboneError) as err:
        table(SplitterEntry(HERE, "Chain", tag("chain")), fallback=FB).stages(Branchy())
    assert "Branchy cannot take part" in str(err.value)  # the own refusals still apply
    with pytest.raises(UnsupportedBackboneError) as err:
        table(fallback=FB).stages(nn.ReLU())
    assert str(err.value).split(": ", 1)[1].startswith(
        "WideChain; and hkt_fb.<type> for each type of hkt_fb_adapter.supported_types(). For")
    assert not {"hkt_fb", "hkt_fb_table"} & set(sys.modules)


def test_the_fallback_splits_its_package_models_only_when_the_own_table_has_nothing(
        fake_packages):
    from hkt_fb.backbones import FbBranchy, FbChain

    assert table(fallback=FB).stages(FbChain())[0] == "fallback"
    assert "hkt_fb_table" in sys.modules
    own_first = table(SplitterEntry("hkt_fb.backbones", "FbChain", tag("own")), fallback=FB)
    assert own_first.stages(FbChain())[0] == "own"
    with pytest.raises(UnsupportedBackboneError, match=r"^FbBranchy cannot take part in hybrid "
                                                       r"forward: it runs three branches"):
        table(fallback=FB).stages(FbBranchy())


def test_a_scoped_type_name_is_refused_with_the_fallback_reason_before_build(fake_packages):
    splitters = table(fallback=FB)
    with pytest.raises(UnsupportedBackboneError, match=r"^FbBranchy cannot take part.*three"):
        splitters.refuse_if_not_a_chain("hkt_fb.FbBranchy")
    splitters.refuse_if_not_a_chain("hkt_fb.FbChain")
    splitters.refuse_if_not_a_chain("hkt_fb.Branchy")  # the fallback's rules for its types


def test_a_fallback_package_not_installed_finds_nothing():
    splitters = table(fallback=Fallback("hkt_absent", "hkt_absent_table:TABLE", "absent()"))
    with pytest.raises(UnsupportedBackboneError, match="no stage splitter for torch"):
        splitters.stages(nn.ReLU())
    with pytest.raises(UnsupportedBackboneError, match="^Branchy cannot take part"):
        splitters.refuse_if_not_a_chain("hkt_absent.Branchy")  # the own reason, no ImportError
    assert "hkt_absent_table" not in sys.modules
