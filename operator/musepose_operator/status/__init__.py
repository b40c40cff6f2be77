"""Pure status logic: what the Job and its Pods say → the Animation's status."""
