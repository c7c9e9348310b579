"""The line a host prints on its SSH channel when its fault begins to act.

The SSH world times a fault on the drill's own clock, when this line arrives (never by a
remote clock): it prints the line on each host after arming the undo, just before the
fault command; a fault command may print it again at the moment it really acts (the lab's
`python -m lab.host_control kill`, after its start-up), and the last line a host prints
counts. Apart from the runtime inventory's model, so a host command imports it without
pydantic."""

FAULT_BEGINS = "tricenter-drill-fault-begins"
