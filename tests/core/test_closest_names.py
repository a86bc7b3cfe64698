"""The shared "Did you mean ...?" hint of unknown names (config keys, model names)."""
from hybridkt_ext.core.closest_names import closest_names, did_you_mean


def test_a_typo_names_the_closest_choice_first_ignoring_case():
    keys = ["SWITCH_POINTS", "TRUST_CHECKPOINTS", "TRANSFER"]
    assert closest_names("swtich_points", keys)[0] == "SWITCH_POINTS"
    assert did_you_mean("SWTICH_POINTS", keys, prefix="MODEL.HYBRIDKT.", n=1) == \
        " Did you mean 'MODEL.HYBRIDKT.SWITCH_POINTS'?"


def test_nothing_close_gives_no_hint():
    assert did_you_mean("zzz", ["resnet50", "convnext_tiny"]) == ""
    assert closest_names("resnet", []) == []
