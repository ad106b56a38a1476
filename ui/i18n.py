"""Interface text of the web page, in English and Chinese, and how the page picks its language.

Only the page's own labels live here; answers come in the question's language from the chain,
and the fixed phrases shown around an answer ("Sources", "Nearest documents") come from
kb.answer.types, shared with the other shells.
"""

from __future__ import annotations

LANGUAGES: dict[str, str] = {"en": "English", "zh": "中文"}

TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "page_title": "Knowledge base",
        "title": "Ask the company knowledge base",
        "subtitle": "Answers come only from your company's documents, with their sources. "
        "Nothing leaves this machine.",
        "chat_placeholder": "Ask a question about the documents…",
        "new_conversation": "New conversation",
        "language": "Language / 语言",
        "collection": "Collection",
        "status": "Knowledge base",
        "files": "Files",
        "chunks": "Chunks",
        "last_ingestion": "Last ingestion: {when}",
        "never_ingested": "Nothing ingested yet.",
        "empty_collection": "This collection has no documents yet: upload some below.",
        "models": "Models",
        "embedding_model": "Embedding: {name}",
        "answer_model": "Answering: {name}",
        "upload": "Add documents",
        "upload_label": "Upload files (PDF, Word, PowerPoint, Excel, HTML, Markdown, text, email)",
        "upload_button": "Add to knowledge base",
        "upload_progress": "Adding {n} file(s)…",
        "upload_running": "Processing {source}",
        "upload_file_ok": "✓ {source}: {status}, {chunks} chunks",
        "upload_file_unchanged": "✓ {source}: already in the knowledge base",
        "upload_file_failed": "✗ {source}: {error}",
        "upload_done": "Added {added}, updated {updated}, unchanged {unchanged}, "
        "failed {failed} ({seconds:.1f} s).",
        "upload_complete": "Documents added",
        "upload_failed_title": "Some files could not be added",
        "stored_as": "stored as {name}",
        "status_added": "added",
        "status_updated": "updated",
        "status_renamed": "added (same content as another file)",
        "status_unchanged": "unchanged",
        "unsafe_name": "the file name is empty or not allowed",
        "unsupported_type": "unsupported file type '{ext}' (supported: {supported})",
        "page": "p. {page}",
        "relevance": "relevance {score:.2f}",
        "queued": "Queued — another question is being answered. Yours starts next.",
        "thinking": "Searching the documents…",
        "stopped": "Stopped: a new question was asked before this answer finished.",
        "loading_models": "Loading the models (first question only)…",
        "understood_as": "Understood as: {question}",
        "answered_in": "{seconds:.1f} s",
        "waited": "waited {seconds:.1f} s in the queue",
        "error": "Error: {message}",
        "internal_error": "Something went wrong ({kind}: {message}). Please try again.",
        "welcome": "Ask anything the company documents cover, in English or Chinese — "
        "for example *How many days of annual leave do managers get?*",
    },
    "zh": {
        "page_title": "知识库",
        "title": "公司知识库问答",
        "subtitle": "回答只来自公司自己的文档，并注明出处。所有数据都不会离开本机。",
        "chat_placeholder": "输入关于文档的问题…",
        "new_conversation": "新对话",
        "language": "Language / 语言",
        "collection": "文档集",
        "status": "知识库状态",
        "files": "文件数",
        "chunks": "文本块",
        "last_ingestion": "最近导入：{when}",
        "never_ingested": "尚未导入任何文档。",
        "empty_collection": "这个文档集还没有文档，请在下方上传。",
        "models": "模型",
        "embedding_model": "向量模型：{name}",
        "answer_model": "回答模型：{name}",
        "upload": "添加文档",
        "upload_label": "上传文件（PDF、Word、PowerPoint、Excel、HTML、Markdown、文本、邮件）",
        "upload_button": "加入知识库",
        "upload_progress": "正在添加 {n} 个文件…",
        "upload_running": "正在处理 {source}",
        "upload_file_ok": "✓ {source}：{status}，{chunks} 个文本块",
        "upload_file_unchanged": "✓ {source}：知识库中已有",
        "upload_file_failed": "✗ {source}：{error}",
        "upload_done": "新增 {added}，更新 {updated}，未变 {unchanged}，失败 {failed}"
        "（{seconds:.1f} 秒）。",
        "upload_complete": "文档已添加",
        "upload_failed_title": "部分文件未能添加",
        "stored_as": "保存为 {name}",
        "status_added": "已添加",
        "status_updated": "已更新",
        "status_renamed": "已添加（与另一文件内容相同）",
        "status_unchanged": "未变",
        "unsafe_name": "文件名为空或不允许",
        "unsupported_type": "不支持的文件类型“{ext}”（支持：{supported}）",
        "page": "第 {page} 页",
        "relevance": "相关度 {score:.2f}",
        "queued": "排队中——正在回答另一个问题，接下来就轮到您。",
        "thinking": "正在查找文档…",
        "stopped": "已停止：这个回答结束前提出了新问题。",
        "loading_models": "正在加载模型（仅第一次提问）…",
        "understood_as": "理解为：{question}",
        "answered_in": "{seconds:.1f} 秒",
        "waited": "排队等待 {seconds:.1f} 秒",
        "error": "错误：{message}",
        "internal_error": "出现问题（{kind}：{message}），请重试。",
        "welcome": "可以用中文或英文提问公司文档中的任何内容，例如：*员工每年有几天年假？*",
    },
}


def t(lang: str, key: str, **values: object) -> str:
    """The interface text `key` in `lang` (English where a language lacks it)."""
    text = TEXTS.get(lang, TEXTS["en"]).get(key) or TEXTS["en"][key]
    return text.format(**values) if values else text


def _from_tag(tag: str | None) -> str | None:
    """'zh-CN', 'zh_Hant', 'en-US,en;q=0.9' → 'zh' / 'en'; None for anything else."""
    if not tag:
        return None
    for part in tag.split(","):
        code = part.split(";")[0].strip().lower().replace("_", "-")
        primary = code.split("-")[0]
        if primary in LANGUAGES:
            return primary
    return None


def pick_language(
    setting: str, browser_locale: str | None = None, accept_language: str | None = None
) -> str:
    """The interface language: the setting when fixed, else the browser's, else English."""
    if setting in LANGUAGES:
        return setting
    return _from_tag(browser_locale) or _from_tag(accept_language) or "en"
