import { createContext } from 'preact';
import { useContext, useEffect, useState } from 'preact/hooks';

export type ThemeChoice = 'system' | 'light' | 'dark';
const KEY = 'rta.theme';

function systemDark(): boolean {
  return typeof matchMedia === 'function' && matchMedia('(prefers-color-scheme: dark)').matches;
}

/** The effective theme ('light' | 'dark'): charts re-create with its colours when it changes. */
export const ThemeContext = createContext<'light' | 'dark'>('light');
export const useTheme = () => useContext(ThemeContext);

export function useThemeChoice(): { choice: ThemeChoice; effective: 'light' | 'dark'; cycle: () => void } {
  const [choice, setChoice] = useState<ThemeChoice>(() => {
    try {
      return (localStorage.getItem(KEY) as ThemeChoice | null) ?? 'system';
    } catch {
      return 'system';
    }
  });
  const [dark, setDark] = useState(systemDark);
  useEffect(() => {
    if (typeof matchMedia !== 'function') return;
    const mq = matchMedia('(prefers-color-scheme: dark)');
    const on = () => setDark(mq.matches);
    mq.addEventListener?.('change', on);
    return () => mq.removeEventListener?.('change', on);
  }, []);
  const effective = choice === 'system' ? (dark ? 'dark' : 'light') : choice;
  useEffect(() => {
    document.documentElement.dataset.theme = effective;
  }, [effective]);
  const cycle = () => {
    const next: ThemeChoice = choice === 'system' ? (effective === 'dark' ? 'light' : 'dark') : choice === 'dark' ? 'light' : 'system';
    setChoice(next);
    try {
      localStorage.setItem(KEY, next);
    } catch {
      // private mode: the choice lasts for this page
    }
  };
  return { choice, effective, cycle };
}

export function ThemeToggle(props: { choice: ThemeChoice; effective: 'light' | 'dark'; onToggle: () => void }) {
  const label = props.choice === 'system' ? `Theme: system (${props.effective})` : `Theme: ${props.choice}`;
  return (
    <button type="button" class="btn ghost" onClick={props.onToggle} title="Switch between system, dark and light theme" aria-label={`${label}; switch theme`}>
      {props.effective === 'dark' ? '☾' : '☀'} <span class="btn-text">{props.choice === 'system' ? 'Auto' : props.choice === 'dark' ? 'Dark' : 'Light'}</span>
    </button>
  );
}
