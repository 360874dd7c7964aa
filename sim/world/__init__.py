"""The simulated world: N real engine runners over one database, a client, faults, the workload that drives
them, the built-in workflows, probes and database dumps. Built on `sim.core`."""
