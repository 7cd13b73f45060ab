"""Planning: explicit, documented rules that turn a data set into decisions."""
