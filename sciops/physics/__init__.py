"""Physics helpers shared by operators and workflows: weak-form residuals of Darcy flow (:mod:`sciops.physics.weak_form`)."""
