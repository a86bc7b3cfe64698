"""The shared "Did you mean ...?" hint of unknown names (config keys, model names)."""
import pytest

from hybridkt_ext.core.closest_names import (closest_names, did_you_mean, refuse_unknown_keys,
                                             renamed_key)


def test_a_typo_names_the_closest_choice_first_ignoring_case():
    keys = ["SWITCH_POINTS", "TRUST_CHECKPOINTS", "TRANSFER"]
    assert closest_names("swtich_points", keys)[0] == "SWITCH_POINTS"
    assert did_you_mean("SWTICH_POINTS", keys, prefix="MODEL.HYBRIDKT.", n=1) == \
        " Did you mean 'MODEL.HYBRIDKT.SWITCH_POINTS'?"


def test_nothing_close_gives_no_hint():
    assert did_you_mean("zzz", ["resnet50", "convnext_tiny"]) == ""
    assert closest_names("resnet", []) == []


def test_a_renamed_key_is_refused_with_its_new_name_in_the_case_written():
    with pytest.raises(ValueError, match=r"^HybridBackbone: 'checkpoint_teacher' was renamed "
                                         r"'recompute_teacher'; write recompute_teacher instead\.$"):
        refuse_unknown_keys({"checkpoint_teacher": True}, ["recompute_teacher", "type"],
                            "HybridBackbone")
    assert renamed_key("CHECKPOINT_TEACHER") == "RECOMPUTE_TEACHER"
    assert renamed_key("switch_points") is None
