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
        "sign_in_title": "Sign in",
        "user_name": "User name",
        "password": "Password",
        "sign_in": "Sign in",
        "sign_in_failed": "Wrong user name or password.",
        "locked_out": "Too many failed sign-ins: try again in {minutes} minutes.",
        "sign_out": "Sign out",
        "signed_in_as": "Signed in as {name}",
        "no_upload_right": "Your account cannot add documents.",
        "upload_into": "Readable by",
        "conversations": "Your conversations",
        "delete_conversation": "Delete",
        "helpful": "Helpful",
        "not_helpful": "Not helpful",
        "feedback_comment": "Comment (optional)",
        "feedback_comment_button": "Comment",
        "feedback_save": "Save comment",
        "feedback_thanks": "Thank you for the feedback.",
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
        "sign_in_title": "登录",
        "user_name": "用户名",
        "password": "密码",
        "sign_in": "登录",
        "sign_in_failed": "用户名或密码错误。",
        "locked_out": "登录失败次数过多：请 {minutes} 分钟后再试。",
        "sign_out": "退出登录",
        "signed_in_as": "当前用户：{name}",
        "no_upload_right": "您的账户不能添加文档。",
        "upload_into": "可读群组",
        "conversations": "您的对话",
        "delete_conversation": "删除",
        "helpful": "有帮助",
        "not_helpful": "没有帮助",
        "feedback_comment": "意见（可选）",
        "feedback_comment_button": "意见",
        "feedback_save": "保存意见",
        "feedback_thanks": "感谢您的反馈。",
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
