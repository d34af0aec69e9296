"""One router per resource; each route translates HTTP to a command and back."""
