"""`stepsim chaos`: real worker processes on one database under SIGKILL, SIGSTOP and killed connections,
then a Jepsen-style check of the history they left (DESIGN §8). Unlike the simulator, nothing here is
deterministic: it tests the engine as deployed, and reports what it saw."""
