"""A comparison study of the contenders: plan, run, results and report (see kerastl.compare)."""
