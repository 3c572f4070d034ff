"""The assistant: an OpenAI-compatible chat proxy with stored conversations.

provider.py   the provider client (the `openai` package over the shared HTTP client) and how
              its failures map to problems
context.py    what is sent: the system prompt template, the user's own statuses, the turns
              that fit the token budget
service.py    conversations and messages: store, list, read, rename, delete, export, erase
turns.py      one turn: checks, limits and context before anything is stored; the question
              stored; the whole answer (`stream: false`, and the portal's form)
opening.py    a streamed answer's start: the provider asked while the question commits
relay.py      a streamed answer relayed to the client, then stored
streaming.py  the server-sent event stream: deltas, keep-alives, timeouts, disconnects
limits.py     the per-user message rate and daily token budget
routes.py     `POST /api/chat` and `/api/chat/conversations`
"""
