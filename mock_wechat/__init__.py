"""A faithful, stateful mock of WeChat's open platform (第三方平台) API server.

Laid out as moto lays out a backend: the state and its rules apart from the HTTP that
serves them (``tests/mock_wechat/test_layers.py`` keeps it so).

- The state: ``models`` (``MockWeChat``, the root, with the lock and the clock) and its
  parts: ``merchant_accounts``, ``authorization`` and ``grants``, ``open_accounts``,
  ``quotas``, ``deliveries``, ``outbox``, ``pushlog``, ``faults``; the formats it speaks:
  ``protocol``, ``errcodes``, ``wire``, ``crypto``, ``user_messages``, ``reply_judge``.
- The HTTP side: ``app`` serves ``api`` (WeChat's APIs: ``api_table`` their paths,
  ``api_handlers`` each one's answer, ``api_dispatch`` one call run), ``authorization_pages``
  and ``control_plane`` (``/_mock/``, reading its input with ``control_inputs``).
- The mock acting on others: ``event_pusher`` delivers to a component's 授权事件接收URL,
  ``message_pusher`` to its 消息与事件接收URL, ``ticket_scheduler`` pushes tickets on time,
  ``release_check`` runs the 全网发布 check over both, ``merchant_client`` plays the
  merchant through the pages; ``python -m mock_wechat`` (``__main__``) runs it all.
"""
