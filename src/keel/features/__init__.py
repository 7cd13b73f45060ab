"""Feature transforms: the ColumnTransformer built from an input schema."""
