import { render } from 'preact';
import './styles.css';
import { App } from './app.js';
import { api, captureAccessToken, wsUrl } from './api.js';
import { Dashboard, type AlertsApi } from './live/index.js';

captureAccessToken();

const alertsApi: AlertsApi = {
  list: () => api.get('/alerts?hours=24&limit=200'),
  setStatus: (id, action) => api.post(`/alerts/${encodeURIComponent(id)}/${action}`),
};

const dashboard = new Dashboard({ url: wsUrl }, alertsApi);
dashboard.start();
render(<App dashboard={dashboard} />, document.getElementById('app')!);
