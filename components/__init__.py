"""KFP components: one folder per step, each with `core.py` (logic, no kfp) and
`component.py` (the only place its component is declared, with
:func:`components.step.step_component`)."""
