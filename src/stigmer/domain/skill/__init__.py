"""Skills: versioned folders with a SKILL.md that agents carry."""
