"""Traces: job traces for the simulator, parsed from the common formats, scaled and given
home partners (:mod:`.trace`), and Slurm accounting converted to the Standard Workload
Format (:mod:`.sacct_swf`)."""
