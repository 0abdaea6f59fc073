"""The lab's Kubernetes-compatible API server (a lab/test server, not for production).

`python -m antrea_lab.apiserver` (see `__main__`) or `server.APIServer` in-process.
Speaks the Kubernetes REST protocol closely enough for the official Python client
(typed, dynamic, watch, informer) and kubectl: discovery, OpenAPI v3, Table output,
watch with resourceVersion resume / 410 Expired / bookmarks, selectors, paging,
merge / JSON / strategic-merge / apply patches, finalizers and graceful deletion,
CRDs with structural schemas, TokenRequest/TokenReview.

Deliberate differences from kube-apiserver: no authorization or admission webhooks, no
garbage collector (propagationPolicy is accepted and ignored), JSON only (protobuf
requests get 415/406), one storage version per resource (no conversion webhooks),
server-side apply owns lists as a whole and never reports conflicts (see apply.py),
and continue tokens resume after the last key rather than from a snapshot.

Module map: server (wiring, TLS, listeners), handlers (HTTP), routing, discovery,
watch (streams), rest (generic REST semantics), storage (objects, history, watchers),
persistence (SQLite write-behind), patching, apply, selectors, validation, and the
per-kind strategies (pod_, service_, namespace_strategy, crds).
"""
