"""NetworkPolicy conformance suite, in the model of Kubernetes' e2e netpol tests.

model.py        namespaces x, y, z; pods a, b, c on three nodes; TCP, UDP, SCTP on 80 and 81
truthtable.py   a pods x pods table of booleans and its upstream-style rendering
reachability.py expected matrices (default-allow + explicit expectations) and the diff
prober.py       probes the whole matrix in parallel from inside the pods' netns
harness.py      the lab side: pods, policies, labels, and "probe until it matches"
"""
