"""``mfaranet eval-fleet``: one evaluation over many bags, serially or on Ray.

Only :mod:`.engine_ray` imports Ray (an optional dependency: ``pip install
"mfaranet_ros[fleet]"``); everything else here runs without it.
"""
