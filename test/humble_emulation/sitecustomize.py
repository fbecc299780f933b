"""Makes this process's rclpy look like Humble's where the package's code would notice.

On ``PYTHONPATH`` (the test leg ``bash scripts/test.sh --humble-emulation`` and
``test/test_humble_emulation.py`` put it there for the node's process), Python imports this
module at start-up, before any of the package's code. It hides what Iron and later added
and the package uses (recorded from rclpy's ``humble`` branch, as the API-surface check's
fixture is):

- the module ``rclpy.event_handler`` (Humble: the same classes in ``rclpy.qos_event``);
- ``Node.add_pre_set_parameters_callback``;
- ``Subscription.get_publisher_count``;
- the ``uninstall_handlers`` keyword of ``rclpy.try_shutdown``;
- it restores Humble's (and Jazzy's) ``LifecycleNode`` behaviour of letting rcl's
  error for a transition the current state lacks escape ``~/change_state``;
- and its C publisher's ``publish_raw`` refuses a ``bytearray``, as an rclpy built with
  Humble's pybind11 2.9.1 does (pybind11_vendor's humble branch; bytearray to
  ``std::string`` came with pybind11 2.10).

Only names the package looks up are hidden: rclpy's own modules keep theirs. A
``humble emulation: on`` line on stderr says it took effect.
"""
import os
import sys
import warnings

if os.environ.get("MFARANET_EMULATE_HUMBLE") == "1":
    import rclpy
    import rclpy.lifecycle.node as _lifecycle
    import rclpy.node
    import rclpy.subscription
    from rclpy.impl.implementation_singleton import rclpy_implementation as _impl

    with warnings.catch_warnings():          # Kilted's alias warns; Humble's module does not
        warnings.simplefilter("ignore")
        import rclpy.qos_event  # noqa: F401
    sys.modules["rclpy.event_handler"] = None       # `from rclpy.event_handler ...` fails
    del rclpy.node.Node.add_pre_set_parameters_callback
    del rclpy.subscription.Subscription.get_publisher_count

    _try_shutdown = rclpy.try_shutdown

    def try_shutdown(*, context=None):
        """Humble's signature: the context only."""
        return _try_shutdown(context=context)

    rclpy.try_shutdown = try_shutdown

    _change_state = _lifecycle.LifecycleNodeMixin._LifecycleNodeMixin__change_state

    def _humble_change_state(self, transition_id):
        """rcl refuses a transition the current state does not have; Humble does not
        catch that error in ``~/change_state``."""
        ids = {t[0] for t in self._state_machine.available_transitions}
        if transition_id not in ids:
            raise _impl.RCLError(f"Transition is not registered (id {transition_id})")
        return _change_state(self, transition_id)

    _lifecycle.LifecycleNodeMixin._LifecycleNodeMixin__change_state = _humble_change_state

    _publish_raw = _impl.Publisher.publish_raw

    def _humble_publish_raw(self, msg):
        """pybind11 2.9's std::string caster: str or bytes, nothing else."""
        if not isinstance(msg, (bytes, str)):
            raise TypeError("publish_raw(): incompatible function arguments (bytes expected; "
                            "Humble's pybind11 2.9.1, emulated)")
        return _publish_raw(self, msg)

    _impl.Publisher.publish_raw = _humble_publish_raw
    print("humble emulation: on", file=sys.stderr, flush=True)
