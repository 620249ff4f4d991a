"""The Model tab's "Model server" block: answer with an OpenAI-compatible server instead of the built-in model.

The user gives the server's URL and an optional key, picks a model from the server's list, tests the
connection, and switches answering to it (or back to the built-in model). The choice is remembered in
``config.toml``; ``DOCMIND_LLM_*`` environment variables still win over it.
"""

from __future__ import annotations

import html

import gradio as gr

from docmind.config import Settings, load_settings, save_settings
from docmind.model.server import ModelServerError, check_connection, probe
from docmind.ui.auth import only_on_the_server
from docmind.ui.context import AppContext
from docmind.ui.feedback import shows_errors
from docmind.ui.status import StatusLine

THINKING_LIMIT = ("DocMind's limit on thinking (`thinking_budget`, about 20 s of thinking by default) applies to the "
                  "built-in model only: a server's model thinks as long as the server lets it, within the answer's "
                  "length limit (`max_new_tokens`). Set a limit on the server itself where it has one, for example "
                  "llama.cpp's `--reasoning-budget`.")
PRIVACY = ("Your documents stay on this computer and are indexed here (the search encoder runs locally). "
           "Only the passages DocMind finds for a question are sent, inside the prompt, to the server you choose, "
           "with the question and the chat's recent messages. The key is kept in `config.toml` in the data folder.")


SERVER_ONLY = ("choosing the model server (every chat's prompts go to it)",
               "DOCMIND_LLM_BASE_URL or llm_base_url in config.toml")


def _server_settings(context: AppContext, url: str, model: str, key: str, request: gr.Request) -> Settings:
    only_on_the_server(request, *SERVER_ONLY)
    if not url.strip():
        raise gr.Error("Type the server's URL first, for example http://localhost:11434/v1.")
    return load_settings(data_dir=context.settings.data_dir, llm_base_url=url.strip(), llm_model=model or "",
                         llm_api_key=key.strip() or None)


def _ok(message: str) -> str:
    return f'<p class="docmind-server-ok">✓ {html.escape(message)}</p>'


def _problem(error: ModelServerError) -> str:
    from docmind.ui.first_run import problem_html

    return problem_html(str(error))


def render(context: AppContext, status: StatusLine) -> None:
    """Add the block to the Model tab being built; ``status`` is redrawn when answering switches."""
    settings = context.settings
    with gr.Accordion("Answer with a model server (Ollama, LM Studio, llama.cpp, vLLM…)",
                      open=bool(settings.llm_base_url), elem_id="docmind-model-server"):
        gr.Markdown("DocMind can send its prompts to an OpenAI-compatible model server on this computer or your "
                    f"network instead of running its own model. {PRIVACY}\n\n{THINKING_LIMIT}")
        with gr.Row():
            url = gr.Textbox(settings.llm_base_url or "", label="Server URL", placeholder="http://localhost:8000/v1",
                             scale=3, elem_id="docmind-server-url")
            key = gr.Textbox(settings.llm_api_key or "", label="API key (optional)", type="password", scale=2,
                             elem_id="docmind-server-key")
        with gr.Row():
            model = gr.Dropdown([settings.llm_model] if settings.llm_model else [], value=settings.llm_model or None,
                                label="Model", allow_custom_value=True, scale=3, elem_id="docmind-server-model")
            find = gr.Button("Find models", scale=1)
            test = gr.Button("Test connection", scale=1, elem_id="docmind-server-test")
        with gr.Row():
            use = gr.Button("Answer with this server", variant="primary", elem_id="docmind-server-use")
            builtin = gr.Button("Use the built-in model again", elem_id="docmind-server-off")
        result = gr.HTML(elem_id="docmind-server-result")

    @shows_errors
    def find_models(url_text: str, key_text: str, request: gr.Request) -> tuple:
        try:
            info = probe(_server_settings(context, url_text, "", key_text, request))
        except ModelServerError as error:
            return gr.skip(), _problem(error)
        return gr.update(choices=info.models, value=info.model), _ok(f"The server offers {len(info.models)} model(s).")

    @shows_errors
    def test_connection(url_text: str, model_name: str, key_text: str, request: gr.Request) -> str:
        try:
            return _ok(check_connection(_server_settings(context, url_text, model_name, key_text, request)))
        except ModelServerError as error:
            return _problem(error)

    @shows_errors
    def use_server(url_text: str, model_name: str, key_text: str, request: gr.Request) -> str:
        chosen = _server_settings(context, url_text, model_name, key_text, request)
        try:
            message = check_connection(chosen)
            model_name = probe(chosen).model
        except ModelServerError as error:
            return _problem(error)
        save_settings(chosen.data_dir, llm_base_url=chosen.llm_base_url, llm_model=model_name,
                      llm_api_key=chosen.llm_api_key)
        context.switch_settings(load_settings(data_dir=chosen.data_dir))
        return _ok(f"{message} Answers now come from this server.")

    @shows_errors
    def use_builtin(request: gr.Request) -> str:
        only_on_the_server(request, *SERVER_ONLY)
        save_settings(context.settings.data_dir, llm_base_url=None, llm_model=None, llm_api_key=None)
        settings = load_settings(data_dir=context.settings.data_dir)
        if settings.llm_base_url:
            raise gr.Error("DOCMIND_LLM_BASE_URL is set in DocMind's environment; remove it to use the built-in model.")
        context.switch_settings(settings)
        return _ok("Answers come from the built-in model again.")

    find.click(find_models, [url, key], [model, result], api_visibility="private")
    test.click(test_connection, [url, model, key], result, api_visibility="private")
    status.follow(use.click(use_server, [url, model, key], result, api_visibility="private"))
    status.follow(builtin.click(use_builtin, outputs=result, api_visibility="private"))
