from services.common.web import serve
from services.demo_app.app import DemoConfig, create_app

serve(create_app(DemoConfig.from_env()))
