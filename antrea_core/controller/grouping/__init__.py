"""Grouping: label selectors and the label indexes that keep group membership current.

`selectors` parses Kubernetes label selectors into normalized, precomputed matchers;
`index.GroupIndex` keeps one member set per distinct (namespace scope, pod selector,
namespace selector) and re-evaluates only the groups a pod or namespace change can affect.
"""

from antrea_core.controller.grouping.index import Group, GroupIndex, GroupKey
from antrea_core.controller.grouping.pods import pod_member
from antrea_core.controller.grouping.selectors import LabelSelector, SelectorError, parse_selector

__all__ = ["Group", "GroupIndex", "GroupKey", "LabelSelector", "SelectorError",
           "parse_selector", "pod_member"]
