from services.common.web import serve
from services.service_target.app import create_app

serve(create_app())
