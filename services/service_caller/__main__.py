from services.common.svid import WorkloadApiSource
from services.common.web import serve
from services.service_caller.app import CallerConfig, create_app

serve(create_app(CallerConfig.from_env(), WorkloadApiSource()))
