"""Extension singletons, bound to the app in ``create_app``."""

from flask_appbuilder import Model
from flask_appbuilder.models.sqla.base import SQLA
from flask_migrate import Migrate
from flask_wtf.csrf import CSRFProtect

db = SQLA(model_class=Model)
migrate = Migrate()
csrf = CSRFProtect()
