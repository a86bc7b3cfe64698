"""detectron2's config carries the FT, AB and CWD options as MODEL.HYBRIDKT keys."""
from tests.for_detectron2 import d2_helpers  # noqa: F401  (skips the module without detectron2)
from detectron2.config import get_cfg  # noqa: E402

import pytest  # noqa: E402

from hybridkt_ext.for_detectron2 import add_hybridkt_config  # noqa: E402
from hybridkt_ext.for_detectron2.hybrid_backbone import transfer_settings  # noqa: E402


def _cfg(*opts):
    cfg = get_cfg()
    add_hybridkt_config(cfg)
    cfg.merge_from_list(list(opts))
    return cfg


def test_the_new_modes_keys_have_their_losses_defaults():
    hk = _cfg().MODEL.HYBRIDKT
    assert (hk.FT_BETA, hk.FT_RATE, hk.FT_STAGES) == (1000.0, 0.5, [])
    assert (hk.AB_WEIGHT, hk.AB_MARGIN, hk.AB_STAGES) == (1.0, 1.0, [])
    assert (hk.CWD_WEIGHT, hk.CWD_TAU, hk.CWD_STAGES) == (3.0, 1.0, [])


def test_the_selected_modes_keys_become_its_options_and_others_are_refused():
    cfg = _cfg("MODEL.HYBRIDKT.TRANSFER", "cwd", "MODEL.HYBRIDKT.CWD_TAU", "2.0")
    assert transfer_settings(cfg).options == dict(weight=3.0, tau=2.0)  # empty stages: default
    cfg = _cfg("MODEL.HYBRIDKT.TRANSFER", "ab", "MODEL.HYBRIDKT.AB_STAGES", "[1, 3]")
    assert transfer_settings(cfg).options == dict(weight=1.0, margin=1.0, stages=[1, 3])
    with pytest.raises(ValueError, match=r"FT_BETA is 5\.0, an option of TRANSFER 'ft', but "
                                         r"TRANSFER is 'cwd'"):
        transfer_settings(_cfg("MODEL.HYBRIDKT.TRANSFER", "cwd", "MODEL.HYBRIDKT.FT_BETA", "5.0"))
