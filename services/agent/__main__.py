from services.agent.app import AgentConfig, create_app
from services.common.svid import WorkloadApiSource
from services.common.web import serve

serve(create_app(AgentConfig.from_env(), WorkloadApiSource()))
