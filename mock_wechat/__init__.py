"""A faithful, stateful mock of WeChat's open platform (第三方平台) API server.

State and API logic live in ``models`` (no HTTP); ``app.create_app`` wraps them in Flask;
``python -m mock_wechat serve`` runs it with the ticket scheduler. ``pusher`` delivers to a
component's 授权事件接收URL, ``message_pusher`` to its 消息与事件接收URL, and
``release_check`` runs the 全网发布 check over both.
"""
