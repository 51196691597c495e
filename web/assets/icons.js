// Icon path data for the shell and the workspace (24×24 stroked outlines, drawn with
// dom.js svgIcon). Kept as data so no markup is ever parsed from strings.

import { svgIcon } from './dom.js';

const PATHS = {
  logo: ['M4 5h16v10H9l-5 4z', 'M8 9h8', 'M8 12h5'],
  inbox: ['M3 13l3-8h12l3 8', 'M3 13v6h18v-6', 'M3 13h5l1 2h6l1-2h5'],
  dashboard: ['M4 4h7v7H4z', 'M13 4h7v4h-7z', 'M13 10h7v10h-7z', 'M4 13h7v7H4z'],
  reports: ['M4 20V10', 'M10 20V4', 'M16 20v-7', 'M22 20H2'],
  agents: ['M9 11a4 4 0 1 0 0-8 4 4 0 0 0 0 8z', 'M2 21v-1a6 6 0 0 1 12 0v1', 'M16 3.5a4 4 0 0 1 0 7', 'M19 21v-1a6 6 0 0 0-3-5.2'],
  skills: ['M12 3l2.7 5.5 6 .9-4.3 4.2 1 6L12 16.8 6.6 19.6l1-6L3.3 9.4l6-.9z'],
  apps: ['M7 2h10v20H7z', 'M11 18h2'],
  settings: ['M12 15a3 3 0 1 0 0-6 3 3 0 0 0 0 6z', 'M19 12h2M3 12h2M12 3v2M12 19v2M17 7l1.4-1.4M5.6 18.4L7 17M17 17l1.4 1.4M5.6 5.6L7 7'],
  logout: ['M15 4h4v16h-4', 'M10 8l-4 4 4 4', 'M6 12h10'],
  send: ['M4 12l16-8-6 16-2-7z', 'M12 13l8-9'],
  check: ['M5 12l4 4 10-10'],
  transfer: ['M4 8h14', 'M14 4l4 4-4 4', 'M20 16H6', 'M10 12l-4 4 4 4'],
  queue: ['M4 6h16', 'M4 12h10', 'M4 18h6', 'M17 14l3 3-3 3'],
  chat: ['M4 5h16v11H9l-5 4z'],
  phone: ['M7 2h10v20H7z', 'M11 18h2'],
  desktop: ['M3 4h18v12H3z', 'M8 20h8', 'M12 16v4'],
  globe: ['M12 21a9 9 0 1 0 0-18 9 9 0 0 0 0 18z', 'M3 12h18', 'M12 3c3 3.5 3 14.5 0 18', 'M12 3c-3 3.5-3 14.5 0 18'],
  mail: ['M3 5h18v14H3z', 'M3 6l9 7 9-7'],
  call: ['M5 3h4l2 5-2.5 1.5a11 11 0 0 0 6 6L16 13l5 2v4a2 2 0 0 1-2 2A16 16 0 0 1 3 5a2 2 0 0 1 2-2z'],
  close: ['M6 6l12 12', 'M18 6L6 18'],
  down: ['M12 5v14', 'M6 13l6 6 6-6'],
  bolt: ['M13 2L4 14h7l-1 8 9-12h-7z'],
  key: ['M8 15a4 4 0 1 0 0-8 4 4 0 0 0 0 8z', 'M11.5 9.5L21 9.5', 'M18 9.5v3', 'M21 9.5v3'],
  shield: ['M12 3l8 3v6c0 5-3.5 8-8 9-4.5-1-8-4-8-9V6z', 'M9 12l2 2 4-4'],
  data: ['M12 3c4.4 0 8 1.3 8 3s-3.6 3-8 3-8-1.3-8-3 3.6-3 8-3z', 'M4 6v12c0 1.7 3.6 3 8 3s8-1.3 8-3V6', 'M4 12c0 1.7 3.6 3 8 3s8-1.3 8-3'],
  log: ['M5 3h14v18H5z', 'M8 7h8', 'M8 11h8', 'M8 15h5'],
  download: ['M12 4v11', 'M7 10l5 5 5-5', 'M5 20h14'],
};

// icon('inbox') → a decorative <svg class="icon">.
export function icon(name, className) {
  return svgIcon(PATHS[name] || PATHS.chat, className);
}
