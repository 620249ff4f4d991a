"""The agent layer: chat sessions and the ReActAgent that answers from the user's documents.

Names are imported on first use, so ``docmind sessions ...`` never loads LlamaIndex or the model.
"""

from docmind._lazy import lazy_getattr

_LAZY = {
    "Sessions": "docmind.agent.sessions",
    "UnknownSessionError": "docmind.agent.sessions",
    "InvalidExportError": "docmind.agent.sessions",
    "NothingToRegenerateError": "docmind.agent.sessions",
    "title_from_question": "docmind.agent.sessions",
    "chat_label": "docmind.agent.sessions",
    "chat_labels": "docmind.agent.sessions",
    "when_label": "docmind.agent.sessions",
    "ChatService": "docmind.agent.chat",
    "ModelHandle": "docmind.agent.chat",
    "load_model_handle": "docmind.agent.chat",
    "EmptyQuestionError": "docmind.agent.chat",
    "QuestionTooLongError": "docmind.agent.chat",
    "SessionBusyError": "docmind.agent.turns",
    "recover_interrupted": "docmind.agent.turns",
    "SessionMemory": "docmind.agent.memory",
    "Passage": "docmind.agent.citations",
}


__getattr__ = lazy_getattr(__name__, _LAZY)


__all__ = sorted(_LAZY)
