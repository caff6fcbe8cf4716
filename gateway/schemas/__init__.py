"""The API's request bodies and response models, one module per resource. Response models
describe every JSON answer of `/api/v1` in the OpenAPI document and serialise exactly what
the API has always returned (timestamps as Python's `isoformat()`)."""
