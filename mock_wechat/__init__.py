"""A faithful, stateful mock of WeChat's open platform (第三方平台) API server.

The state and its rules live in ``models`` and its parts (no HTTP); the WeChat APIs are
``api_table`` (their paths), ``api_handlers`` (each one's answer) and ``api_dispatch`` (one
call run); ``app.create_app`` serves them with Flask; ``python -m mock_wechat serve`` runs
it with the ticket scheduler. ``pusher`` delivers to a
component's 授权事件接收URL, ``message_pusher`` to its 消息与事件接收URL, and
``release_check`` runs the 全网发布 check over both.
"""
