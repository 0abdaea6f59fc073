import pytest

from antrea_core.agent.openflow.pipeline import (
    Pipeline,
    PipelineError,
    PipelineLayout,
    Stage,
    TableSpec,
)

pytestmark = pytest.mark.unit

ROOT = TableSpec("PipelineRootClassifier", Stage.START, Pipeline.ROOT)


def test_tables_are_numbered_by_pipeline_then_stage_then_rank():
    layout = PipelineLayout.build([
        TableSpec("Output", Stage.OUTPUT),
        TableSpec("L3Forwarding", Stage.ROUTING),
        TableSpec("ARPResponder", Stage.OUTPUT, Pipeline.ARP),
        TableSpec("SpoofGuard", Stage.VALIDATION, rank=20),
        TableSpec("Classifier", Stage.CLASSIFIER),
        TableSpec("ARPSpoofGuard", Stage.VALIDATION, Pipeline.ARP),
        TableSpec("UnSNAT", Stage.VALIDATION, rank=30),
        ROOT,
    ])
    names = [t.name for t in layout.tables()]
    assert names == [
        "PipelineRootClassifier", "ARPSpoofGuard", "ARPResponder", "Classifier",
        "SpoofGuard", "UnSNAT", "L3Forwarding", "Output",
    ]
    assert [layout.table_id(n) for n in names] == list(range(8))


def test_next_table_stays_inside_its_pipeline():
    layout = PipelineLayout.build([
        ROOT, TableSpec("ARPResponder", Stage.OUTPUT, Pipeline.ARP),
        TableSpec("Classifier", Stage.CLASSIFIER), TableSpec("Output", Stage.OUTPUT),
    ])
    assert layout.next_table_id("ARPResponder") is None
    assert layout.next_table_id("Classifier") == layout.table_id("Output")
    assert layout.next_table_id("Output") is None
    assert layout.first_table(Pipeline.IP).name == "Classifier"


def test_a_disabled_feature_table_shifts_later_ids():
    base = [ROOT, TableSpec("Classifier", Stage.CLASSIFIER), TableSpec("Output", Stage.OUTPUT)]
    with_proxy = PipelineLayout.build([*base, TableSpec("ServiceLB", Stage.PRE_ROUTING)])
    without = PipelineLayout.build(base)
    assert with_proxy.table_id("Output") == without.table_id("Output") + 1
    assert "ServiceLB" not in without


def test_same_table_declared_twice_must_match():
    spec = TableSpec("L3Forwarding", Stage.ROUTING)
    assert len(PipelineLayout.build([ROOT, spec, spec])) == 2
    with pytest.raises(PipelineError, match="L3Forwarding declared twice"):
        PipelineLayout.build([ROOT, spec, TableSpec("L3Forwarding", Stage.SWITCHING)])


def test_unknown_table_names_its_feature_hint():
    layout = PipelineLayout.build([ROOT])
    with pytest.raises(PipelineError, match="no table named ServiceLB"):
        layout.table_id("ServiceLB")


def test_start_stage_is_for_the_root_only():
    with pytest.raises(PipelineError, match="root table only"):
        PipelineLayout.build([TableSpec("Early", Stage.START)])
