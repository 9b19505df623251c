"""Records to the sinks with losses counted (emoedge.edge.runtime.record_writer): write errors are never swallowed."""

from fakes import FakeClassifier, FakeClock, FakeDetector, SyntheticSource

from emoedge.edge.faces.detect import Face
from emoedge.edge.outputs.sinks import Sink
from emoedge.edge.runtime.config import RuntimeConfig
from emoedge.edge.runtime.pipeline import Pipeline


class _FailsOnLastInterval(Sink):
    path = "broken.db"

    def on_interval(self, summary):
        raise OSError(28, "No space left on device")


def test_the_final_interval_write_error_is_not_swallowed(tmp_path):
    clock = FakeClock()
    p = Pipeline(RuntimeConfig(budget_ms=1000, interval_s=3600, status_every_s=0), source=SyntheticSource(clock, 5),
                 detector=FakeDetector(clock, [], 1), classifier=FakeClassifier(), clock=clock,
                 sinks=[_FailsOnLastInterval()])
    s = p.run()
    assert s.exit_code == 4 and s.records_lost == 1 and "No space left" in s.write_errors[0]
    assert "RECORDS LOST" in s.text()


class _StillFull(Sink):
    """A database that takes intervals only (no events) on a disk that stays full."""
    path = "full.sqlite"

    def on_interval(self, summary):
        raise OSError(28, "No space left on device")


def test_an_event_never_clears_a_storage_problem_of_a_sink_that_takes_no_events(caplog):
    clock = FakeClock()
    p = Pipeline(RuntimeConfig(budget_ms=1000, interval_s=0.005, status_every_s=0),
                 source=SyntheticSource(clock, 30), detector=FakeDetector(clock, [Face(5, 5, 50, 50)], 1),
                 classifier=FakeClassifier(), clock=clock, sinks=[_StillFull()])
    with caplog.at_level("WARNING", logger="emoedge"):
        s = p.run()                       # label events reach the pipeline between failing intervals
    assert s.events_written >= 1 and s.records_lost >= 2
    assert "writing again" not in caplog.text
    assert s.intervals_written == 0       # made, but not stored
    assert p._health_snapshot()["problems"][0].startswith("storage: full.sqlite")
