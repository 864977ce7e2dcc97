"""Fixtures: simulated easydb 5 / fylr instances served over real HTTP (tests/simulator)."""
import pytest

from tests.simulator import datagen
from tests.simulator.server import serve

_GENERATED = {}      # (flavour, seed, size) -> Instance; handed out as clones only (tests mutate state)


def generated_instance(flavour, seed=1, size="tiny"):
    """A fresh copy of the generated instance (generated once per session for all sizes but large)."""
    if size == "large":
        return datagen.generate(flavour, seed=seed, size=size)
    key = (flavour, seed, size)
    if key not in _GENERATED:
        _GENERATED[key] = datagen.generate(flavour, seed=seed, size=size)
    return _GENERATED[key].clone()


@pytest.fixture
def make_sim():
    """make_sim(flavour, size="tiny", seed=1, faults=None, **attrs) -> running SimServer.

    attrs are set on the Instance before serving (e.g. token_lifetime=1).  Shut down at teardown."""
    servers = []

    def factory(flavour, size="tiny", seed=1, faults=None, **attrs):
        sim = generated_instance(flavour, seed, size)
        for name, value in attrs.items():
            if not hasattr(sim, name):
                raise AttributeError("Instance has no attribute %r" % name)
            setattr(sim, name, value)
        server = serve(sim, faults=faults)
        servers.append(server)
        return server
    yield factory
    for server in servers:
        server.shutdown()


@pytest.fixture
def e5_tiny(make_sim):
    return make_sim("easydb5")


@pytest.fixture
def fylr_tiny(make_sim):
    return make_sim("fylr")
