"""REST: FastAPI app factory, dependencies, schemas, problem+json errors and routes."""
