"""Workflows: what the command line's verbs run, each a function of plain arguments that returns
the line it prints (:mod:`~sciops.workflows.training`, :mod:`~sciops.workflows.evaluation`,
:mod:`~sciops.workflows.finetune`, :mod:`~sciops.workflows.inverse_io`, :mod:`~sciops.workflows.demo`),
and the algorithms they alone use (:mod:`~sciops.workflows.inverse`, :mod:`~sciops.workflows.refine`).
The top layer: it may use every kind, and only the command line imports it."""
