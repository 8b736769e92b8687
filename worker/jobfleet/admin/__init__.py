"""The admin HTTP server (`jobfleet admin`): REST and OpenAPI over `jobfleet.Client`."""

from .app import create_app, serve
from .auth import Role, TokenStore
from .routes import ROUTES, Route

__all__ = ["ROUTES", "Role", "Route", "TokenStore", "create_app", "serve"]
