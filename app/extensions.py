"""Extension singletons, bound to the app in ``create_app``."""

from flask_appbuilder import Model
from flask_appbuilder.models.sqla.base import SQLA
from flask_migrate import Migrate
from flask_wtf.csrf import CSRFProtect

# Requests are short and own their session: objects stay readable after a commit instead of
# being reloaded attribute by attribute (most of the purchase path's queries otherwise).
db = SQLA(model_class=Model, session_options={"expire_on_commit": False})
migrate = Migrate()
csrf = CSRFProtect()
