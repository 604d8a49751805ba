"""A local multi-site cluster: topology, inter-site links, front door, supervisor.

This package is tooling around Outlast, not part of a site: in production each
datacenter runs its own nats-server node(s) and workers, and a global load
balancer is the front door. Locally, one supervisor process plays the
datacenters, the WAN links between them and the load balancer.
"""
