# The gateway's image: the service and its pinned runtime dependencies, nothing else (no
# tests, no mock, no dev tools). One image runs as both Cloud Run services; SERVICE_ROLE
# picks the routes. Build it with `make image` (Cloud Build), run it with `make deploy`.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# [project] dependencies from pyproject.toml, before the code, so a code change reuses this layer.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > requirements.txt \
    && pip install --no-compile -r requirements.txt \
    && rm requirements.txt pyproject.toml

COPY service ./service

# A user without a home or a shell: the service needs to write nothing on disk.
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin gateway
USER 10001

# Cloud Run sets PORT; service/gunicorn_conf.py binds 0.0.0.0:$PORT with one worker per CPU.
ENV PORT=8080
EXPOSE 8080
CMD ["gunicorn", "--config", "service/gunicorn_conf.py", "service:create_app()"]
